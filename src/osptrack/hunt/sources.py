"""What `hunt` PATHS name: run folders, batch outputs (folders of runs + manifest.csv), datasets."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from osptrack.errors import BadInput


@dataclass(frozen=True)
class RunRef:
    folder: Path
    batch: str | None
    # (mtime_ns, size) of each file the parser reads: the cache key.
    stamp: tuple[tuple[int, int], ...]


@dataclass
class Inputs:
    runs: list[RunRef] = field(default_factory=list)
    datasets: list[Path] = field(default_factory=list)  # dataset.parquet files


RUN_FILES = ("run.json", "result.json", "events.jsonl", "network.jsonl")


def _stamp(folder: str) -> tuple[tuple[int, int], ...] | None:
    """None when `folder` is not a run folder (no run.json); strings, not Paths: this runs per folder."""
    out = []
    for n, name in enumerate(RUN_FILES):
        try:
            st = os.stat(os.path.join(folder, name))
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            if n == 0:
                return None
            out.append((0, -1))
        except NotADirectoryError:
            return None
    return tuple(out)


def _walk(root: Path, batch: str | None, inputs: Inputs) -> None:
    # Hidden folders are runs being written (`.tmp/`); a folder holding run.json is a leaf,
    # decided by one stat without listing it: most folders of a big batch are run folders.
    stack: list[tuple[str, str | None]] = [(str(root), batch)]
    while stack:
        folder, batch = stack.pop()
        stamp = _stamp(folder)
        if stamp is not None:
            inputs.runs.append(RunRef(Path(folder), batch, stamp))
            continue
        try:
            with os.scandir(folder) as it:
                entries = [(e.name, e.path, e.is_dir(follow_symlinks=False)) for e in it]
        except OSError as exc:
            raise BadInput(f"{folder}: cannot list ({exc.strerror})") from None
        names = {name for name, _, _ in entries}
        if "dataset.parquet" in names:
            inputs.datasets.append(Path(folder) / "dataset.parquet")
        inner = folder if "manifest.csv" in names else batch
        stack.extend((path, inner) for name, path, is_dir in entries if is_dir and not name.startswith("."))


def discover(paths: list[Path]) -> Inputs:
    inputs = Inputs()
    for raw in paths:
        path = raw.resolve()
        if not path.exists():
            raise BadInput(f"{raw}: no such file or folder")
        before = (len(inputs.runs), len(inputs.datasets))
        if path.is_file():
            if path.suffix != ".parquet":
                raise BadInput(f"{raw}: not a run folder, batch output or dataset (.parquet)")
            inputs.datasets.append(path)
        else:
            _walk(path, None, inputs)
        if (len(inputs.runs), len(inputs.datasets)) == before:
            raise BadInput(f"{raw}: no run folders (run.json) or datasets (dataset.parquet) in it")
    # Each input once, in a fixed order, whatever order and overlap PATHS had.
    seen: dict[Path, RunRef] = {}
    for r in inputs.runs:
        if r.folder not in seen or (seen[r.folder].batch is None and r.batch):
            seen[r.folder] = r
    inputs.runs = sorted(seen.values(), key=lambda r: str(r.folder))
    inputs.datasets = sorted(set(inputs.datasets))
    return inputs
