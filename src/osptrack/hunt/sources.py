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


def _stamp(folder: Path) -> tuple[tuple[int, int], ...]:
    out = []
    for name in RUN_FILES:
        try:
            st = os.stat(folder / name)
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((0, -1))
    return tuple(out)


def _walk(root: Path, batch: str | None, inputs: Inputs) -> None:
    # Hidden folders are runs being written (`.tmp/`); a folder holding run.json is a leaf.
    stack = [(root, batch)]
    while stack:
        folder, batch = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise BadInput(f"{folder}: cannot list ({exc.strerror})") from None
        names = {e.name for e in entries}
        if "run.json" in names:
            inputs.runs.append(RunRef(folder, batch, _stamp(folder)))
            continue
        if "dataset.parquet" in names:
            inputs.datasets.append(folder / "dataset.parquet")
        inner = str(folder) if "manifest.csv" in names else batch
        stack.extend(
            (Path(e.path), inner)
            for e in entries
            if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
        )


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
