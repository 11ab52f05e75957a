"""What `osptrack analyze` loads at start-up, and the byte-compiled sources setup.sh leaves."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


# What an offline `analyze` of a PyPI or npm package loads only once a phase needs it (the
# online machinery, the fake network's protocol responders and TLS, the DNS codec, the other
# ecosystems and registry flavours): none of it may be imported before the first phase.
LAZY = (
    "cryptography",
    "ssl",
    "h11",
    "wsproto",
    "dnslib",
    "urllib.request",
    "http.client",
    "semantic_version",
    "yaml",
    "osptrack.registry.rubygems",
    "osptrack.registry.cratesio",
    "osptrack.registry.packagist",
    "osptrack.ecosystems.rubygems",
    "osptrack.ecosystems.nuget",
    "osptrack.sandbox.fakenet.responders.sniff",
    # loaded once the first phase runs (osptrack.run.DEFERRED, in its digest thread), or with the
    # first record (the exfiltration scanner) or request (email's parser for Requires-Python)
    "msgspec",
    "osptrack.trace.events",
    "osptrack.trace.strace",
    "osptrack.trace.ebpf.log",
    "osptrack.digest",
    "osptrack.summary",
    "osptrack.phase_notes",
    "osptrack.verdict",
    "osptrack.sandbox.exfil",
    "concurrent.futures",
    "email.parser",
    "packaging.utils",
)
NOT_LAZY_FOR = {"npm": ("osptrack.ecosystems.npm",)}

# The CLI as a user runs it, stopped where the first phase would spawn: run_phase is replaced
# (before osptrack.run binds it) by one that writes sys.modules and unwinds the run.
FIRST_PHASE_PROBE = """
import json, sys
out = sys.argv[1]
import osptrack.sandbox.runner as runner

class FirstPhase(BaseException):
    pass

def first_phase(*args, **kwargs):
    with open(out, "w") as fh:
        json.dump(sorted(sys.modules), fh)
    for arg in (*args, *kwargs.values()):  # run_phase's promise: the tracer is over (follow mode)
        if hasattr(arg, "set") and hasattr(arg, "is_set"):
            arg.set()
    raise FirstPhase

runner.run_phase = first_phase
sys.argv = ["osptrack", "analyze", *sys.argv[2:]]
from osptrack.entry import main
try:
    main()
except (FirstPhase, SystemExit):
    pass
"""


def _loaded(modules: set[str], names: tuple[str, ...] | list[str]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


@pytest.mark.sandbox
@pytest.mark.parametrize("ecosystem", ["pypi", "npm"])
def test_offline_analyze_imports_nothing_lazy_before_its_first_phase(tmp_path: Path, ecosystem: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root")
    sys.path.insert(0, str(REPO / "tests"))
    from builders import make_npm, make_wheel

    if ecosystem == "pypi":
        archive = make_wheel(tmp_path, "lazy-probe", "1.0.0", {"lazy_probe/__init__.py": "x = 1\n"})
    else:
        archive = make_npm(tmp_path, "lazy-probe", "1.0.0", {"index.js": "module.exports = 1;\n"})
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            FIRST_PHASE_PROBE,
            str(out),
            ecosystem,
            str(archive),
            "--deps-dir",  # its folder indexed, as the corpus benchmarks run
            str(archive.parent),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.is_file(), f"the run did not reach its first phase: {proc.stderr[-2000:]}"
    modules = set(json.loads(out.read_text()))
    assert "osptrack.run" in modules and "osptrack.sandbox.fakenet.core" in modules
    lazy = [n for n in LAZY if n not in NOT_LAZY_FOR.get(ecosystem, ())]
    assert _loaded(modules, lazy) == [], f"imported before the first phase of an offline {ecosystem} run"
    assert _loaded(modules, NOT_LAZY_FOR.get(ecosystem, ())) == list(NOT_LAZY_FOR.get(ecosystem, ()))
    assert not (tmp_path / "run").exists()  # the unwound run left nothing half-written


# Each lazy path, exercised, imports what the test above says it defers: the names are real, and
# the deferred code still works (a leaf is minted, a packument rendered, a query answered...).
LAZY_PATHS = """
import json, sys
from pathlib import Path
tmp = Path(sys.argv[1])
from osptrack.sandbox.fakenet.ca import CertAuthority
ca = CertAuthority.for_machine(folder=tmp / "ca")
ca.server_context("lazy.example.com")
from osptrack.sandbox.exfil import Scanner
assert Scanner({"k": "osptrack-lazy-token-1234"}).decoders
from osptrack.sandbox.fakenet.responders.dns import DnsResponder
from osptrack.sandbox.fakenet.sinkholes import Sinkholes
query = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
assert DnsResponder(Sinkholes(), lambda r: None).answer(query, "198.18.0.53", 53, 0.0, None)
from osptrack.registry.npm import packument
packument("x", [], "http://h/npm/")
from osptrack.registry.upstream import Upstream, UpstreamError
try:
    Upstream(allowed_hosts=frozenset({"127.0.0.1"}), timeout_s=2).get("http://127.0.0.1:9/")
except UpstreamError:
    pass
from osptrack.registry.service import flavour_for
assert flavour_for("rubygems") and flavour_for("crates.io") and flavour_for("packagist")
from osptrack import ecosystems
ecosystems.supported()
from osptrack.sandbox.fakenet import FakeNetwork
net = FakeNetwork("lazy-probe", intercept_tls=False, tokens={"k": "osptrack-lazy-token-1234"})
assert net._catchall.name == "sniff" and net._scanner is not None  # made, not started
from osptrack.registry.service import _HostWorkers
assert not _HostWorkers(0).submit(lambda: 1).done()  # a Future (no worker to run it)
from osptrack.registry.local import requires_python
import zipfile
whl = tmp / "lazy_probe-1.0-py3-none-any.whl"
with zipfile.ZipFile(whl, "w") as zf:
    zf.writestr("lazy_probe-1.0.dist-info/METADATA", "Name: lazy-probe\\nVersion: 1.0\\nRequires-Python: >=3.8\\n")
assert requires_python(whl) == ">=3.8"
from osptrack.registry.local import pypi_name_version
assert pypi_name_version("six-1.0.tar.bz2") == ("six", "1.0")  # not the plain form: packaging's
import osptrack.run
osptrack.run.preload()  # what a phase's digest thread and the batch zygote import
print(json.dumps(sorted(sys.modules)))
"""


def test_the_lazy_paths_import_what_they_defer(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LAZY_PATHS, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert _loaded(modules, LAZY) == sorted(LAZY)


def test_every_ecosystem_module_is_named_as_get_finds_it() -> None:
    from osptrack import ecosystems

    assert {name: eco.name for name, eco in ecosystems._all().items()} == {n: n for n in ecosystems.MODULES}


def test_the_simple_pages_escape_as_html_escape_does() -> None:
    # registry/pypi.py escapes without the html package (its entity table loads at import)
    import html

    from osptrack.registry.pypi import _escape

    for text in ("plain", "a&b<c>d\"e'f", "&amp;", "<script>", "", "naïve-名前", "\"'<>&" * 3):
        assert _escape(text) == html.escape(text)
