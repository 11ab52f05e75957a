"""`phase_note`: one line per phase that ended before the package's own code could run, in
run.json and printed by `osptrack analyze`, for each of issue 10's causes (resolution failed,
a module missing, a build backend absent). The resolution cases run end to end in
test_registry_sandbox.py; the others here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders import make_npm, make_sdist
from osptrack import phase_notes

PIP_BACKEND = (
    "pip._vendor.pyproject_hooks._impl.BackendUnavailable: Cannot import 'osptrack_nobackend.api'\n"
    "ModuleNotFoundError: No module named 'osptrack_nobackend'\n"
)
# Debian's pip 23.0: the hook's own traceback, the backend's module named only at its end
DEBIAN_PIP_BACKEND = (
    "pip._vendor.pyproject_hooks._impl.BackendUnavailable: Traceback (most recent call last):\n"
    '  File "/usr/lib/python3/dist-packages/pip/_vendor/pyproject_hooks/_in_process/_in_process.py",'
    " line 77, in _build_backend\n    obj = import_module(mod_path)\n"
    "ModuleNotFoundError: No module named 'osptrack_nobackend'\n"
)


@pytest.mark.parametrize("eco,stderr,want", [
    ("pypi", PIP_BACKEND, "build backend osptrack_nobackend.api absent"),
    ("pypi", DEBIAN_PIP_BACKEND, "build backend osptrack_nobackend absent"),
    ("pypi", "ERROR: No matching distribution found for requests>=2\n", "no distribution of requests>=2"),
    ("pypi", "ModuleNotFoundError: No module named 'Crypto'\n", "module Crypto missing"),
    ("npm", "npm error 404 Not Found - GET http://pkgmirror.internal.lan/npm/left-pad - Not found\n",
     "left-pad is not in the registry"),
    ("npm", "Error: Cannot find module 'axios'\n", "module axios missing"),
])  # fmt: skip
def test_each_cause_gives_one_line(eco: str, stderr: str, want: str) -> None:
    note = phase_notes.note(eco, "error_analysis", stderr.encode(), b"", [])
    assert note is not None and want in note and "\n" not in note


def test_no_note_when_completed_or_unrecognised() -> None:
    assert phase_notes.note("pypi", "completed", b"ModuleNotFoundError: No module named 'x'", b"", []) is None
    assert phase_notes.note("pypi", "error_analysis", b"Segmentation fault", b"", []) is None
    many = [f"p{i}" for i in range(7)]
    assert phase_notes.note("npm", "error_analysis", b"", b"", many) == (
        "distribution missing from the registry: p0, p1, p2, p3, p4 ..."
    )


def analyze_cli(tmp_path: Path, eco: str, archive: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "run"
    env_cache = {"OSPTRACK_REGISTRY_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "osptrack.cli", "analyze", eco, str(archive), "--out", str(out),
         "--phases", "install"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env_cache, "COLUMNS": "200"},
    )  # fmt: skip
    return proc, json.loads((out / "run.json").read_text())


@pytest.mark.sandbox
def test_module_missing_in_setup_py_is_a_phase_note_printed_by_analyze(tmp_path: Path) -> None:
    setup_py = "import osptrack_absent_mod\nfrom setuptools import setup\nsetup(name='osptrack-needs-mod', version='1.0')\n"
    sdist = make_sdist(tmp_path, "osptrack-needs-mod", "1.0", setup_py)
    proc, info = analyze_cli(tmp_path, "pypi", sdist)
    note = info["phases"]["install"]["phase_note"]
    assert note.startswith("module osptrack_absent_mod missing"), note
    assert f"install: {note}" in " ".join(proc.stdout.split()), proc.stdout


@pytest.mark.sandbox
def test_build_backend_absent_is_a_phase_note(tmp_path: Path) -> None:
    pyproject = '[build-system]\nrequires = []\nbuild-backend = "osptrack_nobackend.api"\n'
    sdist = make_sdist(tmp_path, "osptrack-nobackend", "1.0", "", {"pyproject.toml": pyproject})
    proc, info = analyze_cli(tmp_path, "pypi", sdist)
    note = info["phases"]["install"]["phase_note"]
    assert note.startswith("build backend osptrack_nobackend"), (note, proc.stdout)
    assert f"install: {note}" in " ".join(proc.stdout.split()), proc.stdout


@pytest.mark.sandbox
def test_npm_postinstall_missing_module_is_a_phase_note(tmp_path: Path) -> None:
    tgz = make_npm(tmp_path, "osptrack-needs-axios", "1.0.0", {"post.js": "require('osptrack-axios-like');\n", "index.js": ""},
                   scripts={"postinstall": "node post.js"})  # fmt: skip
    proc, info = analyze_cli(tmp_path, "npm", tgz)
    note = info["phases"]["install"]["phase_note"]
    assert note.startswith("module osptrack-axios-like missing"), (note, proc.stdout)
