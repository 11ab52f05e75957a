"""Read the batch's TARGETS: a CSV, a corpus manifest.json, a labels Parquet, or a collection folder.

Collections (layouts as their projects publish them):

- DataDog malicious-software-packages-dataset:
  `samples/<npm|pypi>/<malicious_intent|compromised_lib>/<name>/<version>/<date>-<name>-v<version>.zip`,
  each zip encrypted with the password `infected`; npm scopes are spelled `@scope@name` in folder names.
- Backstabber's Knife Collection: `samples/<ecosystem>/<name>/<version>/<archive>` (plain archives).
- pypi_malregistry: `<name>/<version>/<sdist>`.

Nothing is opened or unpacked here: this only lists coordinates and archive paths. Collections are
messy (odd version folders, stray files), so entries that cannot be a valid coordinate are skipped
and reported rather than failing the whole batch; CSV and manifest rows are the user's own input
and fail loudly with the line or entry named.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from osptrack.batch.model import DATADOG_ZIP, PLAIN, BatchTarget, make_target
from osptrack.errors import BadInput
from osptrack.target import (
    ARCHIVE_SUFFIXES,
    ECOSYSTEMS,
    normalise_ecosystem,
    normalise_name,
    normalise_version,
)

CSV_COLUMNS = ("ecosystem", "name", "version", "archive")
DATADOG_INTENTS = ("malicious_intent", "compromised_lib")
DATADOG_ECOSYSTEMS = ("npm", "pypi")


@dataclass
class TargetList:
    targets: list[BatchTarget] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason", for the user
    kind: str = ""

    def add(self, target: BatchTarget) -> None:
        self.targets.append(target)


def load_targets(path: Path, archives: Path | None = None) -> TargetList:
    """Detect the kind of TARGETS and list the coordinates it names, in order, de-duplicated."""
    if not path.exists():
        raise BadInput(f"targets not found: {path}")
    if path.is_dir():
        result = load_collection(path)
    elif path.suffix.lower() == ".csv":
        result = load_csv(path)
    elif path.suffix.lower() == ".json":
        result = load_corpus_manifest(path)
    elif path.suffix.lower() in (".parquet", ".pq"):
        result = load_labels(path, archives)
    else:
        raise BadInput(f"unrecognised targets {path}: expected a .csv, manifest .json, .parquet or a folder")
    return _dedupe(result)


def _dedupe(result: TargetList) -> TargetList:
    seen: set[tuple[str, str, str]] = set()
    unique: list[BatchTarget] = []
    for target in result.targets:
        if target.key in seen:
            result.skipped.append(f"{target.origin}: duplicate of an earlier {target.label}")
            continue
        seen.add(target.key)
        unique.append(target)
    result.targets = unique
    return result


# -- CSV -----------------------------------------------------------------------------------------


def load_csv(path: Path) -> TargetList:
    """`ecosystem,name,version[,archive]`, with or without a header; archives relative to the CSV."""
    result = TargetList(kind="csv")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if lineno == 1 and [c.lower() for c in cells[:3]] == list(CSV_COLUMNS[:3]):
            continue
        where = f"{path.name}:{lineno}"
        if len(cells) not in (3, 4):
            raise BadInput(f"{where}: expected ecosystem,name,version[,archive], got {len(cells)} columns")
        archive = _local_archive(path.parent, cells[3], where) if len(cells) == 4 and cells[3] else None
        result.add(make_target(cells[0], cells[1], cells[2], archive=archive, origin=where))
    if not result.targets:
        raise BadInput(f"{path}: no targets")
    return result


def _local_archive(base: Path, value: str, where: str) -> str:
    archive = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
    if not archive.is_file():
        raise BadInput(f"{where}: archive not found: {value}")
    return str(archive)


# -- corpus manifest.json ------------------------------------------------------------------------


def load_corpus_manifest(path: Path) -> TargetList:
    """The shared corpus format: each package's own folder (archive + dependency closure) and the
    Python build tools' folder become that target's offline dependency folders."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("packages"), list):
        raise BadInput(f"{path}: not a corpus manifest (no 'packages' list)")
    base = path.parent
    build_dirs = sorted(
        {str((base / t["archive"]).parent.resolve()) for t in data.get("python_build_tools", [])}
    )
    result = TargetList(kind="corpus manifest")
    for index, entry in enumerate(data["packages"]):
        where = f"{path.name}: packages[{index}]"
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in CSV_COLUMNS):
            raise BadInput(f"{where}: needs string ecosystem, name, version and archive")
        archive = _local_archive(base, entry["archive"], where)
        deps = [str(Path(archive).parent)]
        for dep in entry.get("dependencies") or []:
            dep_dir = str((base / dep["archive"]).parent.resolve())
            if dep_dir not in deps:
                deps.append(dep_dir)
        if normalise_ecosystem(entry["ecosystem"]) == "pypi":
            deps += [d for d in build_dirs if d not in deps]
        result.add(
            make_target(
                entry["ecosystem"],
                entry["name"],
                entry["version"],
                archive=archive,
                deps_dirs=tuple(deps),
                origin=where,
            )
        )
    return result


# -- labels parquet ------------------------------------------------------------------------------


def load_labels(path: Path, archives: Path | None) -> TargetList:
    """Replay known-malicious coordinates that have a local archive.

    Archives come from an `archive` column (one explicit version per row) or, more usually, from
    `--archives DIR`: a collection folder or `<ecosystem>/<name>/<version>/<archive>` tree. Every
    archive there whose coordinate the labels call malicious (withdrawn records never count)
    becomes a target.
    """
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise BadInput(f"cannot read labels parquet {path}: {exc}") from None
    missing = {"ecosystem", "name", "versions", "all_versions", "withdrawn"} - set(table.column_names)
    if missing:
        raise BadInput(f"{path}: not a labels parquet, missing columns {', '.join(sorted(missing))}")
    result = TargetList(kind="labels")
    rows = table.to_pylist()
    if "archive" in table.column_names:
        for index, row in enumerate(rows):
            versions = row.get("versions") or []
            if not row.get("archive") or row.get("withdrawn") or row["ecosystem"] not in ECOSYSTEMS:
                continue
            where = f"{path.name}: row {index}"
            if len(versions) != 1:
                result.skipped.append(f"{where}: an archive row needs exactly one version")
                continue
            archive = _local_archive(path.parent, row["archive"], where)
            result.add(make_target(row["ecosystem"], row["name"], versions[0], archive=archive, origin=where))
    if archives is None:
        if not result.targets:
            raise BadInput(f"{path} has no archive column: pass --archives DIR with the samples to replay")
        return result
    available = load_collection(archives)
    is_malicious = _malicious_matcher(path, rows)
    for target in available.targets:
        if is_malicious(*target.key):
            result.add(target)
    result.skipped += available.skipped
    return result


def _malicious_matcher(path: Path, rows: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    """The labels module's matcher when present (it knows OSV ranges); otherwise explicit versions
    and all-versions records only."""
    try:
        from osptrack.labels.match import LabelIndex  # type: ignore[import-not-found, unused-ignore]

        return LabelIndex.load(path).is_malicious
    except (ImportError, AttributeError, NotImplementedError):
        pass
    index: dict[tuple[str, str], set[str] | None] = {}
    for row in rows:
        eco = str(row["ecosystem"])
        if row.get("withdrawn") or eco not in ECOSYSTEMS:
            continue
        key = (eco, normalise_name(eco, str(row["name"])))
        if row.get("all_versions"):
            index[key] = None
        elif index.get(key, set()) is not None:
            versions = {normalise_version(eco, str(v)) for v in (row.get("versions") or [])}  # type: ignore[attr-defined]
            index.setdefault(key, set()).update(versions)  # type: ignore[union-attr]

    def is_malicious(ecosystem: str, name: str, version: str) -> bool:
        key = (ecosystem, name)
        if key not in index:
            return False
        versions = index[key]
        return versions is None or version in versions

    return is_malicious


# -- collection folders --------------------------------------------------------------------------


def load_collection(root: Path) -> TargetList:
    samples = root / "samples" if (root / "samples").is_dir() else root
    if _is_datadog(samples):
        return _load_datadog(samples)
    eco_dirs = _eco_dirs(samples)
    # A malregistry package may be called `npm`; only a tree of nothing but ecosystems is BKC's.
    if eco_dirs and (samples is not root or len(eco_dirs) == len(_subdirs(samples))):
        return _load_backstabber(samples)
    return _load_malregistry(root)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _eco_dirs(samples: Path) -> list[Path]:
    found = []
    for child in _subdirs(samples):
        try:
            normalise_ecosystem(child.name)
        except BadInput:
            continue
        found.append(child)
    return found


def _is_datadog(samples: Path) -> bool:
    return any((samples / eco / intent).is_dir() for eco in DATADOG_ECOSYSTEMS for intent in DATADOG_INTENTS)


def _versions(name_dir: Path) -> Iterator[tuple[Path, list[Path]]]:
    for version_dir in _subdirs(name_dir):
        files = sorted(p for p in version_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        yield version_dir, files


def _add(result: TargetList, eco: str, name: str, version_dir: Path, archive: Path, packing: str) -> None:
    try:
        result.add(
            make_target(
                eco, name, version_dir.name, archive=str(archive), packing=packing, origin=str(archive)
            )
        )
    except BadInput as exc:
        result.skipped.append(str(exc))


def _load_datadog(samples: Path) -> TargetList:
    result = TargetList(kind="DataDog malicious-software-packages-dataset")
    for eco in DATADOG_ECOSYSTEMS:
        for intent in DATADOG_INTENTS:
            intent_dir = samples / eco / intent
            if not intent_dir.is_dir():
                continue
            for name_dir in _subdirs(intent_dir):
                name = _datadog_name(eco, name_dir.name)
                for version_dir, files in _versions(name_dir):
                    zips = [f for f in files if f.suffix == ".zip"]
                    if len(zips) != 1:
                        result.skipped.append(f"{version_dir}: expected one .zip, found {len(zips)}")
                        continue
                    _add(result, eco, name, version_dir, zips[0], DATADOG_ZIP)
    return result


def _datadog_name(eco: str, folder: str) -> str:
    # `@scope@name` on disk is npm's `@scope/name`.
    if eco == "npm" and folder.startswith("@") and "@" in folder[1:]:
        scope, _, rest = folder[1:].partition("@")
        return f"@{scope}/{rest}"
    return folder


def _archives(files: list[Path]) -> list[Path]:
    return [f for f in files if f.name.endswith(ARCHIVE_SUFFIXES)]


def _load_backstabber(samples: Path) -> TargetList:
    result = TargetList(kind="Backstabber's Knife Collection")
    for eco_dir in _eco_dirs(samples):
        eco = normalise_ecosystem(eco_dir.name)
        for name_dir in _subdirs(eco_dir):
            # npm scopes may be nested as `@scope/<name>/<version>/`.
            names = (
                [(f"{name_dir.name}/{d.name}", d) for d in _subdirs(name_dir)]
                if name_dir.name.startswith("@")
                else [(name_dir.name, name_dir)]
            )
            for name, ndir in names:
                _add_versions(result, eco, name, ndir)
    return result


def _add_versions(result: TargetList, eco: str, name: str, name_dir: Path) -> None:
    for version_dir, files in _versions(name_dir):
        archives = _archives(files)
        if len(archives) != 1:
            result.skipped.append(f"{version_dir}: expected one archive, found {len(archives)}")
            continue
        _add(result, eco, name, version_dir, archives[0], PLAIN)


def _load_malregistry(root: Path) -> TargetList:
    result = TargetList(kind="pypi_malregistry")
    for name_dir in _subdirs(root):
        _add_versions(result, "pypi", name_dir.name, name_dir)
    if not result.targets and not result.skipped:
        raise BadInput(
            f"{root}: not a known collection layout (DataDog, Backstabber's Knife, pypi_malregistry)"
        )
    return result
