"""`phase_note`: one line saying why a phase ended before the package's own code could run.

A failed phase whose package never ran tells a researcher nothing about the package, only about
the environment; run.json and `analyze` say so, from what the toolchain printed and what the
registry service could not serve. Patterns are data, one table per ecosystem; the first match wins.
"""

from __future__ import annotations

import functools
import re


# (pattern over the phase's stderr+stdout, note with {1}-style groups)
@functools.cache  # compiled with the first failed phase's note, not at start-up
def _rules() -> dict[str, tuple[tuple[re.Pattern[str], str], ...]]:
    return {
        "pypi": (
            (
                # newer pip names the backend; Debian's pip 23 prints the hook's traceback, whose
                # last line names the module that failed to import
                re.compile(
                    r"BackendUnavailable: (?:Cannot import '([\w.]+)'"
                    r"|Traceback[\s\S]*?ModuleNotFoundError: No module named '([\w.]+)')"
                ),
                "build backend {0} absent: the sdist was never built",
            ),
            (
                re.compile(r"No matching distribution found for ([^\s;]+)"),
                "resolution failed: no distribution of {0} in the registry (the package's code did not run)",
            ),
            (
                re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'"),
                "module {0} missing: the code that imports it stopped there",
            ),
            (
                re.compile(r"ResolutionImpossible"),
                "resolution failed: conflicting requirements (the package's code did not run)",
            ),
        ),
        "npm": (
            (
                re.compile(r"No matching version found for (\S+)"),  # also after npm's "notarget"
                "resolution failed: no version of {0} in the registry (no lifecycle script ran)",
            ),
            (
                re.compile(r"404 Not Found - GET \S*/npm/(\S+?)(?: |$)"),
                "resolution failed: {0} is not in the registry (no lifecycle script ran)",
            ),
            (
                re.compile(r"Cannot find module '([^']+)'"),
                "module {0} missing: the code that requires it stopped there",
            ),
            (
                re.compile(r"ENOTCACHED"),
                "resolution failed: a dependency was not cached (no lifecycle script ran)",
            ),
        ),
    }


def note(
    ecosystem: str, status: str, stderr: bytes | str, stdout: bytes | str, missing: list[str]
) -> str | None:
    """The phase's note, or None when it completed or failed for a reason not recognised here."""
    if status == "completed":
        return None
    text = _text(stderr) + "\n" + _text(stdout)
    for pattern, template in _rules().get(ecosystem, ()):
        m = pattern.search(text)
        if m:
            return template.format(*(g.strip("'\"") for g in m.groups() if g is not None))
    if missing:
        return f"distribution missing from the registry: {', '.join(missing[:5])}" + (
            " ..." if len(missing) > 5 else ""
        )
    return None


def _text(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode(errors="replace")
