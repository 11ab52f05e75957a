"""What the analyze server (and a batch's zygote) preloads: after `osptrack.run.preload()`, a run
that uses the network, the registry service and the exfiltration scanner imports no module of
its own and parses no rule file, so none of that is paid again by every served run, during its
phases, beside the package (docs/performance.md, "The fixed cost of a run through the CLI")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from server_helpers import needs_root

from builders import JS_SUSPICIOUS, make_npm, require_toolchain

pytestmark = needs_root

SRC = Path(__file__).resolve().parents[2] / "src"

# In a fresh interpreter: preload, then one analysis; what it imported and how often the verdict's
# rules were parsed (the cache's misses), as JSON on stdout.
PROBE = """
import json, sys
from pathlib import Path
import osptrack.run as run
from osptrack.target import parse_target
from osptrack.verdict import engine

run.preload()
misses = engine.load_rules.cache_info().misses
before = set(sys.modules)
archive, deps, out = map(Path, sys.argv[1:4])
outcome = run.analyze(parse_target("npm", str(archive)), run.AnalyzeOptions(deps_dirs=(deps,)), out)
records = [json.loads(line) for line in (out / "network.jsonl").read_text().splitlines()]
print(json.dumps({
    "statuses": outcome.statuses,
    "new": sorted(set(sys.modules) - before),
    "rules_parsed": [misses, engine.load_rules.cache_info().misses],
    "kinds": sorted({r["kind"] for r in records}),
    "exfiltration": len(json.loads((out / "run.json").read_text())["exfiltration"]),
}))
"""


def test_a_preloaded_process_imports_nothing_for_a_networked_run(tmp_path: Path) -> None:
    require_toolchain("npm")
    deps = tmp_path / "deps"
    deps.mkdir()
    make_npm(deps, "osptrack-dep", "1.0.0", {"index.js": "module.exports = 2;\n"})
    # the suspicious package's preinstall (DNS, an HTTP POST of the baits), with a dependency the
    # installer fetches from the registry service
    archive = make_npm(
        tmp_path, "osptrack-preload", "1.0.0",
        {"preinstall.js": JS_SUSPICIOUS, "index.js": "module.exports = 1;\n"},
        scripts={"preinstall": "node preinstall.js"}, extra={"dependencies": {"osptrack-dep": "1.0.0"}},
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(archive), str(deps), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["statuses"] == {"install": "completed", "import": "completed"}, seen
    # the run did reach for what is lazily imported: DNS, HTTP (registry and the POST), the scanner
    assert {"dns", "tcp"} <= set(seen["kinds"]), seen
    assert seen["exfiltration"] >= 1, seen
    assert seen["new"] == [], f"imported per run despite preload(): {seen['new']}"
    assert seen["rules_parsed"] == [1, 1], "the verdict's rules were parsed again by the run"


def test_every_lazy_module_named_for_preload_exists() -> None:
    """A renamed module must not make preload() fail (the server would then preload nothing)."""
    import importlib.util

    from osptrack import run

    missing = [name for name in run.RUN_LAZY if importlib.util.find_spec(name) is None]
    assert missing == []
