"""Parsed runs, cached as Parquet segments so a second hunt over 10,000 runs reads no JSON.

Runs are cut into segments of about SEGMENT_MEAN runs at content-defined boundaries (a run whose
path hashes to 0 mod SEGMENT_MEAN ends a segment), so adding or changing one run re-parses only
its own segment. A segment is named by the hash of its members' paths and (mtime, size) stamps:
a changed run gives a new name, and the stale segment is simply never read again. Segments are
written to a temp folder and renamed into place, so a killed hunt leaves no half segment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from osptrack.errors import BadInput
from osptrack.hunt.runfolder import Columns, parse_run
from osptrack.hunt.schema import TABLES
from osptrack.hunt.sources import RunRef

# Bump when the parser or schema changes, so old segments are not read.
CACHE_VERSION = "2"
SEGMENT_MEAN = 128
SEGMENT_MAX = 512
RUN_TABLES = tuple(TABLES)


def default_cache_dir() -> Path:
    env = os.environ.get("OSPTRACK_CACHE")
    if env:
        return Path(env) / "hunt"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "osptrack" / "hunt"


def segments(runs: list[RunRef]) -> Iterator[list[RunRef]]:
    current: list[RunRef] = []
    for run in runs:
        current.append(run)
        boundary = zlib.crc32(str(run.folder).encode()) % SEGMENT_MEAN == 0
        if boundary or len(current) >= SEGMENT_MAX:
            yield current
            current = []
    if current:
        yield current


def segment_id(members: list[RunRef]) -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    for r in members:
        h.update(f"{r.folder}\0{r.batch}\0{r.stamp}\n".encode())
    return h.hexdigest()[:32]


def parse_segment(members: list[RunRef]) -> Columns:
    cols = Columns()
    for r in members:
        parse_run(r.folder, cols, r.batch)
    return cols


def _write_segment(members: list[RunRef], final: Path) -> Path:
    cols = parse_segment(members)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        for table in RUN_TABLES:
            pq.write_table(cols.to_arrow(table), tmp / f"{table}.parquet", compression="zstd")
        try:
            tmp.rename(final)
        except OSError:
            # Another hunt wrote the same segment first: identical content, keep theirs.
            if not (final / f"{RUN_TABLES[-1]}.parquet").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _job(args: tuple[list[RunRef], str]) -> str:
    members, final = args
    return str(_write_segment(members, Path(final)))


def check_outside(cache_dir: Path, inputs: list[Path]) -> None:
    resolved = cache_dir.resolve()
    for p in inputs:
        root = p.resolve()
        if resolved == root or root in resolved.parents:
            raise BadInput(f"cache folder {cache_dir} is inside the input {p}: pass --cache elsewhere")


def cached_segments(runs: list[RunRef], cache_dir: Path, workers: int = 1) -> list[Path]:
    """Segment folders for `runs`, parsing only the segments not cached yet."""
    seg_root = cache_dir / "segments"
    try:
        seg_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cache folder {cache_dir}: {exc.strerror}") from None
    wanted: list[Path] = []
    todo: list[tuple[list[RunRef], str]] = []
    for members in segments(runs):
        folder = seg_root / segment_id(members)
        wanted.append(folder)
        if not (folder / f"{RUN_TABLES[-1]}.parquet").is_file():
            todo.append((members, str(folder)))
    if len(todo) > 1 and workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_job, todo))
    else:
        for job in todo:
            _job(job)
    return wanted
