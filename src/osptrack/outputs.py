"""Where a command may write: the one `--out` rule every writer applies before any work.

An output may be
- a path that does not exist yet (its parent folders are made), or
- an empty folder, or
- an earlier osptrack output of the same kind, recognised by a marker osptrack wrote there
  (a run's `run.json`, a batch's `manifest.csv`, a dataset's `build_stats.json`, or the
  `.osptrack.json` marker that `claim_output_dir` writes), which the new output replaces.

Anything else is refused with `BadInput` (one line, exit 2) before the command does any work:
a folder holding anything osptrack did not write, the current folder or one of its parents, a
file where a folder is wanted (and the reverse), and a place the user cannot write to. So
`--force` is never needed to keep data safe, and nothing outside the output is ever touched.

Writers call `check_output_dir(path, kind)` (or `check_output_file`) first, then either
`claim_output_dir(path, kind)` (folders they fill in place) or `replace_dir(tmp, path)` (folders
they build beside and swap in, like a run folder). A new kind needs no registration: the
`.osptrack.json` marker recognises it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from osptrack import __version__
from osptrack.errors import BadInput

MARKER = ".osptrack.json"

# Kinds whose outputs predate the marker, or whose own files are the marker, and how to tell them.
# Each recogniser sees an existing folder and says whether osptrack wrote it as that kind.
_RECOGNISERS: dict[str, Callable[[Path], bool]] = {}


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _by_osptrack(doc: Any) -> bool:
    tool = doc.get("tool") if isinstance(doc, dict) else None
    return isinstance(tool, dict) and tool.get("name") == "osptrack"


def is_run_folder(folder: Path) -> bool:
    """A run folder of `osptrack analyze`: run.json (written last) naming osptrack as its tool."""
    return _by_osptrack(_read_json(folder / "run.json"))


def _is_batch(folder: Path) -> bool:
    try:
        with (folder / "manifest.csv").open("rb") as fh:
            head = fh.readline()
    except OSError:
        # A batch killed between taking its lock and writing the manifest leaves only these.
        names = {p.name for p in folder.iterdir()}
        return bool(names) and names <= {".lock", ".tmp"}
    return head.startswith(b"timestamp,ecosystem,name,version,")


def _is_dataset(folder: Path) -> bool:
    return _by_osptrack(_read_json(folder / "build_stats.json"))


def _is_baseline(folder: Path) -> bool:
    """Baselines written before the marker: only `<eco>-null-<kind>/` run folders."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all("-null-" in p.name and p.is_dir() and is_run_folder(p) for p in entries)


def _is_model(folder: Path) -> bool:
    """`model train` folders written before the marker: model.json says osptrack wrote it."""
    doc = _read_json(folder / "model.json")
    return isinstance(doc, dict) and doc.get("tool") == "osptrack"


def _is_hunt_cache(folder: Path) -> bool:
    """`hunt --cache` folders written before the marker: only `segments/`."""
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")} <= {"segments"}


_RECOGNISERS.update(
    run=is_run_folder,
    batch=_is_batch,
    dataset=_is_dataset,
    baseline=_is_baseline,
    hunt_cache=_is_hunt_cache,
    model=_is_model,
)

# What a kind is called in messages.
_NAMES = {
    "run": "run folder",
    "batch": "batch folder",
    "dataset": "dataset folder",
    "baseline": "baseline folder",
    "plots": "plots folder",
    "hunt_cache": "hunt cache",
    "model": "model folder",
}


def _describe(kind: str) -> str:
    return _NAMES.get(kind, f"{kind} output")


def _has_marker(folder: Path, kind: str) -> bool:
    doc = _read_json(folder / MARKER)
    return _by_osptrack(doc) and doc.get("kind") == kind


def holds_output(folder: Path, kind: str) -> bool:
    """Did osptrack write `folder` as an output of `kind`?"""
    recognise = _RECOGNISERS.get(kind)
    return _has_marker(folder, kind) or (recognise is not None and recognise(folder))


def _label(path: Path | str, option: str) -> str:
    return f"{option} {path}"


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")


def _probe_writable(folder: Path, what: str) -> None:
    """Make and remove a folder: the only test that sees read-only mounts, immutable folders and
    missing permissions alike (root passes os.access on a read-only bind)."""
    try:
        probe = tempfile.mkdtemp(prefix=".osptrack-probe-", dir=folder)
    except OSError as exc:
        raise BadInput(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.rmdir(probe)


def _check_location(path: Path, option: str, shown: Path | str) -> Path:
    """Common checks for any output path; returns the absolute path, symlinks resolved."""
    what = _label(shown, option)
    if str(shown).strip() == "":
        raise BadInput(f"{option} is empty; name a new folder")
    resolved = path.expanduser().resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise BadInput(f"{what} is the current folder or one of its parents; name a new folder")
    existing = _nearest_existing(resolved)
    if existing != resolved and not existing.is_dir():
        raise BadInput(f"{what}: {existing} is a file, not a folder")
    return resolved


def check_output_dir(path: Path | str, kind: str, option: str = "--out") -> Path:
    """Refuse (BadInput) any folder output that is not missing, empty, or osptrack's own `kind`.

    Returns the absolute path to write to. Call it before any work; call it again just before
    replacing, if work took long enough for the folder to change meanwhile.
    """
    resolved = _check_location(Path(path), option, path)
    what = _label(path, option)
    if os.path.lexists(resolved):
        if not resolved.is_dir():
            raise BadInput(f"{what} is a file, not a folder; name a new folder")
        try:
            empty = next(resolved.iterdir(), None) is None
        except OSError as exc:
            raise BadInput(f"{what}: cannot read it ({exc.strerror or exc})") from None
        if not empty and not holds_output(resolved, kind):
            raise BadInput(
                f"{what} holds files that are not an osptrack {_describe(kind)}; "
                "name a new or empty folder (nothing was changed)"
            )
        # A folder replaced whole needs its parent writable; one filled in place, itself.
        _probe_writable(resolved.parent if kind == "run" else resolved, what)
    else:
        _probe_writable(_nearest_existing(resolved), what)
    return resolved


def check_output_file(
    path: Path | str, recognise: Callable[[Path], bool], kind: str, option: str = "--out"
) -> Path:
    """The same rule for a single file: missing, or a file `recognise` says osptrack wrote."""
    resolved = _check_location(Path(path), option, path)
    what = _label(path, option)
    if os.path.lexists(resolved):
        if not resolved.is_file():
            raise BadInput(f"{what} exists and is not a file; name a new file")
        if not recognise(resolved):
            raise BadInput(f"{what} is not an osptrack {kind} file; name a new file (nothing was changed)")
        _probe_writable(resolved.parent, what)
    else:
        _probe_writable(_nearest_existing(resolved.parent), what)
    return resolved


def claim_output_dir(path: Path, kind: str) -> None:
    """Make the folder (after check_output_dir) and mark it as osptrack's `kind`."""
    path.mkdir(parents=True, exist_ok=True)
    if not _has_marker(path, kind):
        from osptrack.jsonio import atomic_write_json

        atomic_write_json(path / MARKER, {"tool": {"name": "osptrack", "version": __version__}, "kind": kind})


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(RENAME_EXCHANGE): swap two paths in one step. False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return bool(renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0)


def replace_dir(tmp: Path, out: Path) -> None:
    """Put the complete folder `tmp` at `out` (a sibling), replacing what check_output_dir allowed.

    A missing or empty `out` is a plain rename. An earlier output is swapped with `tmp` in one
    step and then removed from `tmp`'s name, so no `.old` copy is left and a kill never leaves
    `out` missing; where the kernel cannot swap, the old folder moves to `tmp`'s name first.
    """
    try:
        os.rename(tmp, out)  # missing, or an empty folder: rename replaces it
        return
    except OSError:
        if not out.is_dir():
            raise
    if not _exchange(tmp, out):
        aside = tmp.with_name(f"{tmp.name}-{uuid.uuid4().hex[:8]}")
        os.rename(out, aside)
        os.rename(tmp, out)
        tmp = aside
    shutil.rmtree(tmp)  # now the earlier output, under the temp name beside `out`
