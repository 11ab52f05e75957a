"""Where a report may be written: osptrack.outputs' --out rule, with how a report is recognised."""

from __future__ import annotations

from pathlib import Path

from osptrack.jsonio import atomic_write_bytes
from osptrack.outputs import check_output_file

# Every format carries one of these near its start (HTML's generator meta, SARIF's tool name,
# Markdown's title, JSON's summary key), which is how an earlier report is recognised.
MARKERS = (b'<meta name="generator" content="osptrack', b'"name": "osptrack"', b"# osptrack: ", b'"summary"')


def written_by_osptrack(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return False
    return any(m in head for m in MARKERS)


def check_target(path: Path) -> Path:
    """A new file, or an earlier osptrack report (replaced); anything else is BadInput (exit 2)."""
    return check_output_file(path, written_by_osptrack, "report")


def write_report(path: Path, data: bytes) -> None:
    atomic_write_bytes(check_target(path), data)
