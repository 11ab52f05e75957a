"""The host-side content-addressed cache of distribution files, shared by runs and batch workers.

Layout under the cache root (default `$OSPTRACK_CACHE/registry`, i.e. /var/cache/osptrack/registry;
`OSPTRACK_REGISTRY_CACHE` names it directly):

    blobs/<aa>/<sha256>   the bytes, named by their sha256 (written once, never modified)
    index.json            key "<ecosystem>/<name>/<filename>" -> what the service needs to list it
    .lock                 flock(2) for every read-modify-write of index.json

Concurrent writers are safe: a blob is written to a temp file in the same folder, fsynced and
renamed onto its content name (two writers of the same bytes produce the same file), and the
index is changed only under an exclusive lock, re-read inside it, and replaced atomically.
Readers open blobs without a lock; a blob evicted after it was opened stays readable.

The cache is capped (`max_bytes`, default 5 GiB, `OSPTRACK_REGISTRY_CACHE_MAX` such as `2G`);
past the cap the least recently served entries go first. Pinned entries (the build backends that
scripts/setup.sh puts in) are never evicted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_bytes

DEFAULT_MAX_BYTES = 5 << 30
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`1073741824`, `512M`, `5G`, `5GiB` -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise BadInput(f"not a size: {text!r} (expected bytes or a number with K, M, G or T)")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()]


def default_root() -> Path:
    explicit = os.environ.get("OSPTRACK_REGISTRY_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / "registry"


def default_max_bytes() -> int:
    text = os.environ.get("OSPTRACK_REGISTRY_CACHE_MAX")
    return parse_size(text) if text else DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class CacheEntry:
    key: str
    ecosystem: str
    name: str
    version: str
    filename: str
    sha256: str
    size: int
    meta: dict[str, Any]  # requires_python, yanked (pypi); integrity, shasum, manifest (npm)
    atime: float
    pinned: bool


class ContentCache:
    def __init__(self, root: Path | None = None, max_bytes: int | None = None) -> None:
        self.root = root or default_root()
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        self._touched: dict[str, float] = {}

    # ------------------------------------------------------------------ reading

    def entries(self) -> list[CacheEntry]:
        """Every entry, read without taking the lock (index.json is only ever replaced whole)."""
        return [self._entry(k, v) for k, v in self._load().items()]

    def blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def touch(self, key: str) -> None:
        """Remember that `key` was served; `flush()` writes the access times (once per run)."""
        self._touched[key] = time.time()

    def flush(self) -> None:
        if not self._touched or not (self.root / "index.json").exists():
            return
        with self._locked():
            index = self._load()
            for key, t in self._touched.items():
                if key in index:
                    index[key]["atime"] = max(index[key].get("atime", 0.0), t)
            self._store(index)
        self._touched.clear()

    # ------------------------------------------------------------------ writing

    def put(
        self,
        ecosystem: str,
        name: str,
        version: str,
        filename: str,
        data: bytes,
        sha256: str,
        meta: dict[str, Any] | None = None,
        pinned: bool = False,
    ) -> CacheEntry:
        """Store bytes whose sha256 the caller has already checked; evict past the cap."""
        blob = self.blob(sha256)
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(blob, data)
        key = f"{ecosystem}/{name}/{filename}"
        record = {
            "ecosystem": ecosystem,
            "name": name,
            "version": version,
            "filename": filename,
            "sha256": sha256,
            "size": len(data),
            "meta": meta or {},
            "atime": time.time(),
            "pinned": pinned,
        }
        with self._locked():
            index = self._load()
            if key in index and index[key].get("pinned"):
                record["pinned"] = True
            index[key] = record
            self._evict(index, keep=key)
            self._store(index)
        return self._entry(key, record)

    def _evict(self, index: dict[str, dict[str, Any]], keep: str) -> None:
        sizes = {v["sha256"]: int(v["size"]) for v in index.values()}
        total = sum(sizes.values())
        victims = sorted(
            (k for k, v in index.items() if k != keep and not v.get("pinned")),
            key=lambda k: float(index[k].get("atime", 0.0)),
        )
        for key in victims:
            if total <= self.max_bytes:
                break
            sha = index.pop(key)["sha256"]
            if all(v["sha256"] != sha for v in index.values()):  # last reference to the blob
                total -= sizes[sha]
                with contextlib.suppress(FileNotFoundError):
                    self.blob(sha).unlink()

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            doc = orjson.loads((self.root / "index.json").read_bytes())
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError:
            return {}  # a damaged index starts over; the blobs are still content-addressed
        entries = doc.get("entries") if isinstance(doc, dict) else None
        return entries if isinstance(entries, dict) else {}

    def _store(self, index: dict[str, dict[str, Any]]) -> None:
        atomic_write_bytes(self.root / "index.json", orjson.dumps({"version": 1, "entries": index}))

    @staticmethod
    def _entry(key: str, v: dict[str, Any]) -> CacheEntry:
        return CacheEntry(
            key, v["ecosystem"], v["name"], v["version"], v["filename"], v["sha256"], int(v["size"]),
            dict(v.get("meta") or {}), float(v.get("atime", 0.0)), bool(v.get("pinned")),
        )  # fmt: skip
