"""`DIR/manifest.csv`: one row per attempt, append-only, safe against `kill -9`.

Locally each row is one `write()` on an O_APPEND descriptor followed by fsync, so a kill leaves at
most one torn last line; the reader drops it and the next batch rewrites the file without it. On an
fsspec URL (no appends on object stores) the batch keeps the rows in memory and replaces the whole
object at most every few seconds and at the end; a kill loses at most those last rows, never a
finished run folder (which is the source of truth for resume).
"""

from __future__ import annotations

import csv
import io
import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from osptrack.batch.model import FINAL_OUTCOMES, RECOVERED, AttemptResult, BatchTarget
from osptrack.batch.store import Destination, phase_findings, phase_statuses
from osptrack.errors import BadInput

MANIFEST_NAME = "manifest.csv"
# osptrack.run.PHASES, spelled out so reading a manifest never imports the sandbox stack.
PHASES = ("install", "import", "execute")
COLUMNS = (
    "timestamp",
    "ecosystem",
    "name",
    "version",
    "archive",
    *PHASES,  # package-analysis Status per phase; empty when the phase did not run
    "outcome",
    "wall_s",
    "analysis_s",
    "worker",
    "attempt",
    "error",
)
_ERROR_MAX = 500


@dataclass(frozen=True)
class ManifestRow:
    fields: dict[str, str]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.fields["ecosystem"], self.fields["name"], self.fields["version"])

    @property
    def outcome(self) -> str:
        return self.fields["outcome"]

    @property
    def attempt(self) -> int:
        try:
            return int(self.fields["attempt"])
        except ValueError:
            return 0


def row_for(result: AttemptResult) -> dict[str, str]:
    eco, name, version = result.target.key
    when = datetime.fromtimestamp(result.timestamp, UTC).isoformat(timespec="seconds")
    error = " ".join(result.error.split())[:_ERROR_MAX]  # one line, bounded
    row = {
        "timestamp": when,
        "ecosystem": eco,
        "name": name,
        "version": version,
        "archive": result.target.archive or "",
        "outcome": result.outcome,
        "wall_s": f"{result.wall_s:.3f}",
        "analysis_s": f"{result.analysis_s:.3f}",
        "worker": result.worker,
        "attempt": str(result.attempt),
        "error": error,
    }
    for phase in PHASES:
        row[phase] = result.statuses.get(phase, "")
    return row


def _render(rows: list[dict[str, str]], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def parse(text: str, where: str) -> tuple[list[ManifestRow], bool]:
    """Rows, and whether the text needs a rewrite (a torn or malformed line was dropped)."""
    if not text.strip():
        return [], bool(text)
    lines = text.splitlines(keepends=True)
    dirty = False
    if not text.endswith("\n"):
        lines.pop()  # a torn last line from a kill mid-write (rows never contain newlines)
        dirty = True
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return [], True
    if tuple(header) != COLUMNS:
        raise BadInput(f"{where} has columns {','.join(header)!r}, expected {','.join(COLUMNS)!r}")
    rows: list[ManifestRow] = []
    for values in reader:
        if len(values) != len(COLUMNS):
            dirty = True
            continue
        rows.append(ManifestRow(dict(zip(COLUMNS, values, strict=True))))
    return rows, dirty


class Manifest:
    """Reads the existing manifest of DIR and appends attempt rows. Thread-safe."""

    def __init__(self, dest: Destination, flush_every_s: float = 5.0) -> None:
        self.dest = dest
        self._lock = threading.Lock()
        self._flush_every_s = flush_every_s
        self._last_flush = 0.0
        where = f"{dest.root}/{MANIFEST_NAME}"
        text = dest.read_text(MANIFEST_NAME)
        self.rows, dirty = parse(text, where) if text is not None else ([], True)
        self._pending_remote = False
        if dirty or text is None:
            # Start from a clean file (header only, or without the torn line) before appending.
            dest.write_text(MANIFEST_NAME, _render([r.fields for r in self.rows], header=True))
        self._fd: int | None = None
        if dest.is_local:
            self._fd = os.open(dest.local_root / MANIFEST_NAME, os.O_WRONLY | os.O_APPEND)

    def close(self) -> None:
        with self._lock:
            self._flush_remote(force=True)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries used by resume ----------------------------------------------------------------

    def attempts(self) -> Counter[tuple[str, str, str]]:
        """Highest attempt number recorded per coordinate (so numbering continues on resume)."""
        counts: Counter[tuple[str, str, str]] = Counter()
        for row in self.rows:
            counts[row.key] = max(counts[row.key], row.attempt)
        return counts

    def finished_keys(self) -> set[tuple[str, str, str]]:
        return {row.key for row in self.rows if row.outcome in FINAL_OUTCOMES}

    # -- writing -------------------------------------------------------------------------------

    def append(self, result: AttemptResult) -> None:
        row = row_for(result)
        with self._lock:
            self.rows.append(ManifestRow(row))
            if self._fd is not None:
                data = _render([row], header=False).encode("utf-8")
                os.write(self._fd, data)  # one write: O_APPEND keeps concurrent rows whole
                os.fsync(self._fd)
            else:
                self._pending_remote = True
                self._flush_remote(force=False)

    def _flush_remote(self, force: bool) -> None:
        if self._fd is not None or not self._pending_remote:
            return
        now = time.monotonic()
        if not force and now - self._last_flush < self._flush_every_s:
            return
        self.dest.write_text(MANIFEST_NAME, _render([r.fields for r in self.rows], header=True))
        self._last_flush = now
        self._pending_remote = False


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recovered_result(target: BatchTarget, run_json: dict[str, Any] | None, attempt: int) -> AttemptResult:
    """A row for a run folder that was finished on disk but never recorded (kill -9 after rename)."""
    wall = 0.0
    timings = run_json.get("timings") if run_json else None
    if isinstance(timings, dict) and isinstance(timings.get("total_s"), int | float):
        wall = float(timings["total_s"])
    return AttemptResult(
        target=target,
        outcome=RECOVERED,
        attempt=attempt,
        statuses=phase_statuses(run_json),
        findings=phase_findings(run_json),
        analysis_s=wall,
        worker="",
        error="run folder found finished without a manifest row",
    )
