"""Per-ecosystem baselines: what the toolchain does when the package does nothing.

A baseline is the run folder of a null package (an empty package of that ecosystem, analysed
through the same pipeline). Reading one works on any run folder: every File, Socket, Command and
DNS record it holds, templated with the null package's own name, becomes a noise key. A record of
a real run is noise when its templated key is in the baseline of the same phase (or of any phase,
for a phase the baseline did not run) and, for Files, when its Read/Write/Delete flags are a subset
of what the toolchain itself did to that path: a package that *writes* a file the toolchain only
reads is not noise.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from osptrack.dataset.importers import UNIT_RUN, discover, read_run_folder
from osptrack.dataset.model import RunRecord, SocketRec
from osptrack.dataset.templating import Templater
from osptrack.errors import BadInput
from osptrack.target import normalise_ecosystem

NULL_NAME = "osptrack-null"
NULL_VERSION = "0.0.0"
NULL_MODULE = "osptrack_null"


def file_mask(read: bool, write: bool, delete: bool) -> int:
    return int(read) | (int(write) << 1) | (int(delete) << 2)


def socket_key(sock: SocketRec) -> str:
    # Sinkhole addresses are handed out per run, so a named connection is keyed by its names.
    names = ",".join(sorted(h.lower() for h in sock.Hostnames or ()))
    return f"{names or sock.Address}:{sock.Port}"


@dataclass
class PhaseNoise:
    files: dict[str, int] = field(default_factory=dict)  # templated path -> union of flag masks
    files_exact: dict[str, int] = field(default_factory=dict)  # raw path -> mask (for the figures)
    sockets: set[str] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)
    dns: set[str] = field(default_factory=set)

    def merge(self, other: PhaseNoise) -> None:
        for mine, theirs in ((self.files, other.files), (self.files_exact, other.files_exact)):
            for key, mask in theirs.items():
                mine[key] = mine.get(key, 0) | mask
        self.sockets |= other.sockets
        self.commands |= other.commands
        self.dns |= other.dns


@dataclass
class Baseline:
    """Noise keys of one ecosystem, per phase, plus their union for phases the baseline lacks."""

    ecosystem: str
    phases: dict[str, PhaseNoise] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    any_phase: PhaseNoise = field(default_factory=PhaseNoise)

    def for_phase(self, phase: str) -> PhaseNoise:
        return self.phases.get(phase, self.any_phase)

    def add_run(self, record: RunRecord) -> None:
        templater = Templater(record.ecosystem, record.name, record.version)
        for phase, result in record.phases.items():
            noise = PhaseNoise()
            for f in result.Files or ():
                mask = file_mask(f.Read, f.Write, f.Delete)
                t = templater.path(f.Path)
                noise.files[t] = noise.files.get(t, 0) | mask
                noise.files_exact[f.Path] = noise.files_exact.get(f.Path, 0) | mask
            noise.sockets.update(socket_key(s) for s in result.Sockets or ())
            noise.commands.update(templater.argv(c.Command) for c in result.Commands or ())
            for d in result.DNS or ():
                noise.dns.update(q.Hostname.lower().rstrip(".") for q in d.Queries or ())
            self.phases.setdefault(phase, PhaseNoise()).merge(noise)
            self.any_phase.merge(noise)
        self.sources.append(record.source_path)


def load_baselines(path: Path) -> dict[str, Baseline]:
    """Every run folder under `path` (or `path` itself), grouped by ecosystem."""
    if not path.is_dir():
        raise BadInput(f"baseline folder not found: {path}")
    runs = [u for u in discover([path]) if u.kind == UNIT_RUN]
    if not runs:
        raise BadInput(f"no baseline run folder (with run.json) under {path}")
    baselines: dict[str, Baseline] = {}
    for unit in runs:
        record = read_run_folder(Path(unit.path))
        baselines.setdefault(record.ecosystem, Baseline(record.ecosystem)).add_run(record)
    return baselines


# ---------------------------------------------------------------- null packages


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0  # reproducible archives: same bytes every time
    tar.addfile(info, io.BytesIO(data))


def build_null_pypi_wheel(folder: Path) -> Path:
    """An empty pure-Python wheel: one empty module, so install and import do nothing of their own."""
    dist = f"{NULL_MODULE}-{NULL_VERSION}.dist-info"
    files = {
        f"{NULL_MODULE}/__init__.py": b"",
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {NULL_NAME}\nVersion: {NULL_VERSION}\n"
            "Summary: osptrack null package (baseline)\n"
        ).encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: osptrack\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/top_level.txt": f"{NULL_MODULE}\n".encode(),
    }
    record = "".join(f"{name},,\n" for name in files) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    path = folder / f"{NULL_MODULE}-{NULL_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


def build_null_pypi_sdist(folder: Path) -> Path:
    """An empty setup.py sdist: the legacy build path many malicious packages use."""
    root = f"{NULL_MODULE}-{NULL_VERSION}"
    setup_py = (
        "from setuptools import setup\n"
        f"setup(name={NULL_NAME!r}, version={NULL_VERSION!r}, packages=[{NULL_MODULE!r}])\n"
    )
    pkg_info = f"Metadata-Version: 2.1\nName: {NULL_NAME}\nVersion: {NULL_VERSION}\n"
    path = folder / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, f"{root}/PKG-INFO", pkg_info.encode())
        _add_bytes(tar, f"{root}/setup.py", setup_py.encode())
        _add_bytes(tar, f"{root}/{NULL_MODULE}/__init__.py", b"")
    return path


def build_null_npm(folder: Path) -> Path:
    package_json = json.dumps(
        {"name": NULL_NAME, "version": NULL_VERSION, "main": "index.js", "license": "MIT"}
    )
    path = folder / f"{NULL_NAME}-{NULL_VERSION}.tgz"
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, "package/package.json", package_json.encode() + b"\n")
        _add_bytes(tar, "package/index.js", b"module.exports = {};\n")
    return path


NULL_BUILDERS = {
    "pypi": {"wheel": build_null_pypi_wheel, "sdist": build_null_pypi_sdist},
    "npm": {"tgz": build_null_npm},
}


def run_baseline(ecosystem: str, out: Path, timeout_s: float = 300.0) -> list[Path]:
    """Analyse the null package(s) of `ecosystem` into `out/<eco>-null-<kind>/` run folders."""
    from osptrack.run import DEFAULT_PHASES, AnalyzeOptions, analyze
    from osptrack.target import PackageRef

    eco = normalise_ecosystem(ecosystem)
    builders = NULL_BUILDERS.get(eco)
    if builders is None:
        raise BadInput(f"no null package for {eco} yet; supported: {', '.join(NULL_BUILDERS)}")
    phases = (*DEFAULT_PHASES, "execute") if eco == "pypi" else DEFAULT_PHASES
    from osptrack.outputs import check_output_dir, claim_output_dir

    check_output_dir(out, "baseline")
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="osptrack-null-") as tmp:
        for kind, builder in builders.items():
            archive = builder(Path(tmp))
            ref = PackageRef(eco, NULL_NAME, NULL_VERSION, archive)
            target = out / f"{eco}-null-{kind}"
            analyze(ref, AnalyzeOptions(phases=phases, timeout_s=timeout_s), target)
            written.append(target)
    claim_output_dir(out, "baseline")
    return written
