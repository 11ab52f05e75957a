"""The npm execute phase calls every exported function of the main module and of the package's
other requirable files: plain functions, classes (with `new`), async functions; an endless
synchronous loop is stopped by the per-call limit, a process.exit() is refused, and the calls
after them still run."""

from __future__ import annotations

import json

import pytest

from builders import make_npm
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import PackageRef

PORT = 8080

BEHAVIOUR = f"""
const dns = require("dns"), net = require("net"), cp = require("child_process");
async function behave(host) {{
  const tag = host.split(".")[0];
  try {{
    const {{ address }} = await dns.promises.lookup(host, 4);
    await new Promise((resolve) => {{
      const s = net.connect({{ host: address, port: {PORT} }}, () => {{ s.end("GET / HTTP/1.0\\r\\n\\r\\n"); resolve(); }});
      s.on("error", resolve);
      s.setTimeout(3000, () => {{ s.destroy(); resolve(); }});
    }});
  }} catch (e) {{ console.log("osptrack-test: network failed", e.code); }}
  cp.execSync("sh -c 'echo " + tag + "-ran; id'", {{ stdio: "inherit" }});
}}
module.exports.behave = behave;
"""

INDEX = """
const { behave } = require("./lib/behave.js");
module.exports = {
  spin() { for (;;) {} },
  bail() { process.exit(2); },
  fetchConfig(url) { return behave("npm-exec-func.osptrack-test.example.com"); },
  Client: class Client { constructor(opts) { this.ready = behave("npm-exec-class.osptrack-test.example.com"); } },
};
"""

HELPER = """
const { behave } = require("./behave.js");
module.exports = async function sync(path) { await behave("npm-exec-file.osptrack-test.example.com"); };
"""


@pytest.fixture(scope="module")
def npm_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("npmexec")
    files = {"index.js": INDEX, "lib/behave.js": BEHAVIOUR, "lib/sync.js": HELPER}
    tgz = make_npm(base, "osptrack-exec-demo", "1.0.0", files)
    ref = PackageRef("npm", "osptrack-exec-demo", None, tgz)
    analyze(ref, AnalyzeOptions(phases=("install", "import", "execute"), timeout_s=120), base / "run")
    return json.loads((base / "run" / "result.json").read_text())


def hostnames(record: dict) -> set[str]:
    return {q["Hostname"] for d in record["DNS"] or [] for q in d["Queries"]}


@pytest.mark.sandbox
@pytest.mark.parametrize("tag", ["npm-exec-func", "npm-exec-class", "npm-exec-file"])
def test_execute_calls_exports_of_main_and_other_files(npm_run: dict, tag: str) -> None:
    execute = npm_run["Analysis"]["execute"]
    assert execute["Status"] == "completed"
    assert f"{tag}.osptrack-test.example.com" in hostnames(execute)
    commands = [" ".join(c["Command"]) for c in execute["Commands"] or []]
    assert any(f"{tag}-ran" in c for c in commands), commands
    assert any(s["Port"] == PORT for s in execute["Sockets"] or [])


@pytest.mark.sandbox
def test_import_alone_calls_nothing(npm_run: dict) -> None:
    assert npm_run["Analysis"]["import"]["Status"] == "completed"
    assert not {h for h in hostnames(npm_run["Analysis"]["import"]) if h.startswith("npm-exec")}
