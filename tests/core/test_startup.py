"""What `osptrack analyze` loads at start-up, and the byte-compiled sources setup.sh leaves."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Libraries only the dataset, hunt, model and report commands need; each costs 50-500 ms to import.
HEAVY = (
    "pyarrow",
    "duckdb",
    "dask",
    "distributed",
    "matplotlib",
    "sklearn",
    "scipy",
    "numpy",
    "pandas",
    "jinja2",
    "markdown_it",
    "pygments",
    "lightgbm",
)


def test_analyze_import_closure_has_no_heavy_library(tmp_path: Path) -> None:
    # The command's whole path: the CLI parses a real `analyze` (which imports osptrack.run and
    # stops at the missing archive), then the modules the command loads after the run (verdict,
    # the json view, the summary table).
    code = (
        "import sys\n"
        f"sys.argv = ['osptrack', 'analyze', 'pypi', {str(tmp_path / 'missing-1.0-py3-none-any.whl')!r}]\n"
        "from osptrack.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 2, exc.code\n"
        "import osptrack.run, osptrack.verdict, osptrack.report.view, osptrack.cli.analyze as a\n"
        "a.print_summary, a.print_json\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "archive not found" in proc.stderr
    assert proc.stdout.strip() == "[]", f"osptrack analyze imports {proc.stdout.strip()}"


def test_heavy_list_is_checked_against_something_that_loads_them() -> None:
    # The test above can fail: the dataset command's modules do load a heavy library.
    code = (
        "import sys, osptrack.dataset.build\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pyarrow" in proc.stdout


def test_compile_script_writes_bytecode_despite_pythondontwritebytecode(tmp_path: Path) -> None:
    src = tmp_path / "pkg"
    shutil.copytree(REPO / "src" / "osptrack" / "trace", src, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(
        ["bash", str(REPO / "scripts" / "compile-bytecode.sh"), sys.executable, str(src)],
        env=env,
        check=True,
        timeout=300,
    )
    sources = sorted(src.rglob("*.py"))
    assert sources
    for py in sources:
        pyc = Path(importlib.util.cache_from_source(str(py)))
        assert pyc.is_file(), f"{py.name}: no {pyc.name}"
        # The header ties it to this source (mtime and size): the interpreter will use it.
        header = pyc.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER
        st = py.stat()
        assert int.from_bytes(header[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
        assert int.from_bytes(header[12:16], "little") == st.st_size & 0xFFFFFFFF


def test_setup_byte_compiles_the_installed_sources() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    pip_line = setup.index("pip install -q --disable-pip-version-check -e")
    compile_line = setup.index("bash scripts/compile-bytecode.sh .venv/bin/python src/osptrack")
    assert compile_line > pip_line  # after the editable install, which compiles nothing of src/
