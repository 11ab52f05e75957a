"""`hunt` over one real sandbox run: every traced event and result record reaches the views."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest

from osptrack.hunt.engine import HuntOptions, connect, query

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        shutil.which("bwrap") is None or shutil.which("strace") is None or os.geteuid() != 0,
        reason="needs bubblewrap, strace and root",
    ),
    pytest.mark.skipif(not (SHARED / "corpus" / "manifest.json").is_file(), reason="no ../shared corpus"),
]


def test_real_run_reaches_every_view(tmp_path: Path) -> None:
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    manifest = orjson.loads((SHARED / "corpus" / "manifest.json").read_bytes())
    entry = next(p for p in manifest["packages"] if p["ecosystem"] == "pypi" and p["name"] == "six")
    run = tmp_path / "six"
    analyze(
        parse_target("pypi", str(SHARED / "corpus" / entry["archive"])),
        AnalyzeOptions(phases=("install", "import"), timeout_s=120),
        run,
    )
    con = connect([run], HuntOptions(cache_dir=tmp_path / "cache"))
    result = orjson.loads((run / "result.json").read_bytes())
    events = sum(1 for line in (run / "events.jsonl").read_bytes().splitlines() if line.strip())
    assert query(con, "SELECT count(*) FROM events").rows == [(events,)]
    for phase, body in result["Analysis"].items():
        got = query(con, f"SELECT count(*) FROM files WHERE phase = '{phase}'").rows
        assert got == [(len(body["Files"]),)], phase
    assert query(con, "SELECT name, install_status, honeytokens_n > 0 FROM runs").rows == [
        ("six", "completed", True)
    ]
    # The sandbox's pip ran; its command line is searchable.
    assert query(con, "SELECT count(*) > 0 FROM commands WHERE command_line LIKE '%pip install%'").rows == [
        (True,)
    ]
