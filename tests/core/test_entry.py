"""The console script: `osptrack --version` answers without loading the CLI framework (scripts probe
with it), and `analyze` ends without the interpreter's teardown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from osptrack import __version__

HEAVY = ("typer", "rich", "click", "pyarrow", "duckdb", "dask", "matplotlib")


def test_version_loads_no_framework() -> None:
    code = (
        "import sys; sys.argv = ['osptrack', '--version']\n"
        "from osptrack.entry import main; main()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"osptrack {__version__}", "[]"]


def test_help_loads_no_data_library() -> None:
    code = (
        "import sys; sys.argv = ['osptrack', '--help']\n"
        "from osptrack.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY[3:]!r} if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Usage:" in proc.stdout and proc.stderr.strip() == "[]", proc.stderr


def run_console_script(tmp_path: Path, args: list[str], thread: bool = False) -> tuple[int, str, set[str]]:
    """osptrack.entry.run (the console script) with an atexit handler and an object whose __del__
    only the interpreter's teardown calls; which of the two left a file."""
    code = (
        "import atexit, sys, threading\n"
        "from pathlib import Path\n"
        f"tmp = Path({str(tmp_path)!r})\n"
        "atexit.register(lambda: (tmp / 'atexit').write_text('ran'))\n"
        "class Finalised:\n"
        "    def __del__(self):\n"
        "        (tmp / 'teardown').write_text('ran')\n"
        "keep = Finalised()\n"
        + ("threading.Thread(target=threading.main_thread().join).start()\n" if thread else "")
        + f"sys.argv = ['osptrack', *{args!r}]\n"
        "from osptrack.entry import run\n"
        "run()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    left = {p.name for p in tmp_path.iterdir()} & {"atexit", "teardown"}
    return proc.returncode, proc.stderr, left


def test_analyze_exits_without_the_interpreters_teardown(tmp_path: Path) -> None:
    code, err, left = run_console_script(tmp_path, ["analyze", "pypi", str(tmp_path / "missing-1.0.tar.gz")])
    assert code == 2 and err.startswith("osptrack: error: archive not found"), err
    assert left == {"atexit"}  # atexit handlers ran, the teardown did not


def test_other_commands_and_live_threads_exit_normally(tmp_path: Path) -> None:
    code, err, left = run_console_script(tmp_path, ["diff", str(tmp_path / "a")])
    assert code == 2 and "Missing argument" in err, err
    assert left == {"atexit", "teardown"}
    for name in left:
        (tmp_path / name).unlink()
    code, err, left = run_console_script(
        tmp_path, ["analyze", "pypi", str(tmp_path / "gone-1.0.tar.gz")], thread=True
    )
    assert code == 2 and "archive not found" in err, err
    assert left == {"atexit", "teardown"}  # a thread left running: the normal exit joins it
