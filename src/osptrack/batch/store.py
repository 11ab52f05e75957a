"""Where finished run folders go: a local (or shared) folder, or an fsspec URL.

A run folder counts as finished only when it holds `run.json`. Locally a run is analysed into
`DIR/.tmp/<uuid>/run` and renamed into place in one step. Object stores have no directory rename,
so for URLs every other file is uploaded first and `run.json` last: an interrupted upload leaves
a folder without `run.json`, which the next attempt overwrites.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import orjson

from osptrack.batch.model import BatchTarget
from osptrack.errors import BadInput
from osptrack.outputs import check_output_dir

RUN_JSON = "run.json"
TMP_DIR = ".tmp"


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(RENAME_EXCHANGE): swap two paths in one step. False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return bool(renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0)


def is_url(root: str) -> bool:
    return "://" in root


def phase_statuses(run_json: dict[str, Any] | None) -> dict[str, str]:
    """`phases.<phase>.status` of a run.json (docs/formats.md), tolerating a malformed one."""
    phases = run_json.get("phases") if isinstance(run_json, dict) else None
    if not isinstance(phases, dict):
        return {}
    return {
        str(p): i["status"]
        for p, i in phases.items()
        if isinstance(i, dict) and isinstance(i.get("status"), str)
    }


def phase_findings(run_json: dict[str, Any] | None) -> dict[str, str]:
    """`phases.<phase>.findings` of a run.json: one line of what was notable, "" for nothing."""
    phases = run_json.get("phases") if isinstance(run_json, dict) else None
    if not isinstance(phases, dict):
        return {}
    return {
        str(p): i["findings"]
        for p, i in phases.items()
        if isinstance(i, dict) and isinstance(i.get("findings"), str)
    }


def read_run_json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return loaded if isinstance(loaded, dict) else None


class Destination:
    """The batch output root `DIR`, local path or fsspec URL. Picklable (only holds the root)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") if is_url(root) else str(Path(root).expanduser().absolute())

    @property
    def is_local(self) -> bool:
        return not is_url(self.root)

    @property
    def local_root(self) -> Path:
        assert self.is_local
        return Path(self.root)

    def check(self) -> None:
        """Fail early, as bad input, when an fsspec URL has no backend installed or is malformed."""
        if self.is_local:
            # Missing, empty or an earlier batch folder (osptrack.outputs).
            check_output_dir(self.local_root, "batch")
            return
        try:
            self._fs()
        except (ImportError, ValueError) as exc:
            raise BadInput(f"cannot use --out {self.root}: {exc}") from None

    def _fs(self) -> tuple[Any, str]:
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.root)
        return fs, path.rstrip("/")

    def run_dir(self, target: BatchTarget) -> str:
        return f"{self.root}/{target.rel_dir}"

    def attempt_parent(self) -> Path:
        """Where attempt folders are made: beside the results locally (same filesystem, so the
        final rename is atomic), else in the machine's temp folder. Always private (0700)."""
        base = self.local_root / TMP_DIR if self.is_local else Path(tempfile.gettempdir()) / "osptrack-batch"
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)
        return base

    def new_attempt_dir(self) -> Path:
        path = self.attempt_parent() / uuid.uuid4().hex
        path.mkdir(mode=0o700)
        return path

    # -- finished runs -------------------------------------------------------------------------

    def finished(self, targets: list[BatchTarget]) -> set[str]:
        """rel_dirs of the targets whose run folder holds run.json."""
        if self.is_local:
            root = self.local_root
            return {t.rel_dir for t in targets if (root / t.rel_dir / RUN_JSON).is_file()}
        fs, path = self._fs()
        if not fs.exists(path):
            return set()
        # One listing instead of a request per target: object stores charge per call.
        found = {str(p)[len(path) + 1 : -len(RUN_JSON) - 1] for p in fs.glob(f"{path}/**/{RUN_JSON}")}
        return {t.rel_dir for t in targets if t.rel_dir in found}

    def read_run_json(self, target: BatchTarget) -> dict[str, Any] | None:
        if self.is_local:
            return read_run_json(self.local_root / target.rel_dir / RUN_JSON)
        fs, path = self._fs()
        try:
            loaded = orjson.loads(fs.cat_file(f"{path}/{target.rel_dir}/{RUN_JSON}"))
        except (OSError, orjson.JSONDecodeError):
            return None
        return loaded if isinstance(loaded, dict) else None

    def finalize(self, target: BatchTarget, local_run: Path, replace: bool) -> bool:
        """Move a complete run folder into place. Returns False if a finished run was already
        there and `replace` is off (a duplicate execution, e.g. Dask re-running a lost task)."""
        if not (local_run / RUN_JSON).is_file():
            raise RuntimeError("analyze returned without writing run.json")
        if self.is_local:
            return self._finalize_local(target, local_run, replace)
        return self._finalize_remote(target, local_run, replace)

    def _finalize_local(self, target: BatchTarget, local_run: Path, replace: bool) -> bool:
        dest = self.local_root / target.rel_dir
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            os.rename(local_run, dest)
            return True
        if (dest / RUN_JSON).is_file() and not replace:
            return False
        # rename() cannot replace a non-empty folder. Swap the two atomically where the kernel and
        # filesystem can (so a kill never leaves the coordinate without a run), else move aside.
        if not _exchange(local_run, dest):
            os.rename(dest, local_run.parent / f"old-{uuid.uuid4().hex}")
            os.rename(local_run, dest)
        else:
            shutil.rmtree(local_run, ignore_errors=True)  # now holds the old run
        return True

    def _finalize_remote(self, target: BatchTarget, local_run: Path, replace: bool) -> bool:
        fs, path = self._fs()
        dest = f"{path}/{target.rel_dir}"
        if fs.exists(f"{dest}/{RUN_JSON}"):
            if not replace:
                return False
            fs.rm_file(f"{dest}/{RUN_JSON}")  # unfinish first, so a crash mid-upload is not "finished"
        if fs.exists(dest):
            fs.rm(dest, recursive=True)
        files = sorted(
            p for p in local_run.rglob("*") if p.is_file() and p.relative_to(local_run) != Path(RUN_JSON)
        )
        for file in files:
            remote = f"{dest}/{file.relative_to(local_run).as_posix()}"
            fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(file), remote)
        fs.put_file(str(local_run / RUN_JSON), f"{dest}/{RUN_JSON}")
        return True

    # -- manifest storage ----------------------------------------------------------------------

    def read_text(self, name: str) -> str | None:
        if self.is_local:
            p = self.local_root / name
            return p.read_text(encoding="utf-8") if p.is_file() else None
        fs, path = self._fs()
        try:
            return bytes(fs.cat_file(f"{path}/{name}")).decode("utf-8")
        except FileNotFoundError:
            return None

    def write_text(self, name: str, text: str) -> None:
        """Whole-file replace: an atomic rename locally, a single object PUT on stores."""
        if self.is_local:
            from osptrack.jsonio import atomic_write_bytes

            atomic_write_bytes(self.local_root / name, text.encode("utf-8"))
            return
        fs, path = self._fs()
        fs.makedirs(path, exist_ok=True)
        fs.pipe_file(f"{path}/{name}", text.encode("utf-8"))

    def clean_stale_attempts(self) -> int:
        """Remove attempt folders left by a killed batch (only under DIR/.tmp, only locally)."""
        if not self.is_local:
            return 0
        base = self.local_root / TMP_DIR
        if not base.is_dir():
            return 0
        count = 0
        for child in base.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            count += 1
        return count
