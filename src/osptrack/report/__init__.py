"""Reports of one run folder (`osptrack report`) and the index of a batch.

One module per format behind `render(run_dir, fmt) -> bytes`: sarif.py, markdown.py, html.py,
and json (the summary and verdict `analyze --format json` prints). index.py is the batch index.
"""

from __future__ import annotations

from pathlib import Path

from osptrack.errors import BadInput
from osptrack.jsonio import dumps

FORMATS = ("sarif", "markdown", "html", "json")


def render(run_dir: Path, fmt: str) -> bytes:
    from osptrack.report import view as view_mod

    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    view = view_mod.load(run_dir)
    if fmt == "sarif":
        from osptrack.report import sarif

        return dumps(sarif.render(view), pretty=True) + b"\n"
    if fmt == "markdown":
        from osptrack.report import markdown

        return markdown.render(view).encode()
    if fmt == "html":
        from osptrack.report import html

        return html.render(view).encode()
    return dumps({"summary": view.summary, "verdict": view.verdict.to_dict()}, pretty=True) + b"\n"
