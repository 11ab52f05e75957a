"""`osptrack --version` answers without loading the CLI framework (scripts probe with it)."""

from __future__ import annotations

import subprocess
import sys

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
