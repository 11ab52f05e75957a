"""pip inside the sandbox installs as the workstation's developer does (`pip install --user`), so
its resolver counts the persona's pre-installed packages as installed.

Every package is built here from source; the registry service gets an empty cache (no seeded
build backends, no persona wheels), so whatever resolves comes from the persona or a --deps-dir.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from builders import make_wheel
from osptrack.registry.service import RegistryConfig
from osptrack.run import AnalyzeOptions, RunOutcome, analyze
from osptrack.sandbox.persona import PYTHON_SITE, python_pins, python_site_host
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _persona_site() -> None:
    if python_site_host() is None:
        pytest.fail("the persona's Python packages are missing: run scripts/setup.sh")


def run(tmp_path: Path, archive: Path, deps: tuple[Path, ...] = ()) -> tuple[RunOutcome, dict, dict]:
    empty = tmp_path / "no-seed"
    empty.mkdir(exist_ok=True)
    config = RegistryConfig(cache_root=tmp_path / "cache", seed_folders=(empty,))
    out = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    options = AnalyzeOptions(timeout_s=180, deps_dirs=deps, registry=config)
    outcome = analyze(parse_target("pypi", str(archive)), options, out)
    return outcome, json.loads((out / "run.json").read_text()), json.loads((out / "result.json").read_text())


def output(result: dict, phase: str, stream: str = "Stdout") -> str:
    return base64.b64decode(result["Analysis"][phase][stream]).decode(errors="replace")


def closure_names(info: dict) -> set[str]:
    return {c["name"] for c in info["registry"]["closure"]}


def test_a_dependency_the_persona_has_is_satisfied_by_the_persona_copy(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path, "osptrack-needs-requests", "1.0",
        {"needs_requests.py": "import requests\nVERSION = requests.__version__\n"},
        requires=("requests",),
    )  # fmt: skip
    outcome, info, result = run(tmp_path, wheel)
    install = output(result, "install")
    assert outcome.statuses == {"install": "completed", "import": "completed"}, output(
        result, "install", "Stderr"
    )
    assert f"Requirement already satisfied: requests in {PYTHON_SITE}" in install, install
    assert "requests" not in closure_names(info), info["registry"]  # never asked of the registry
    assert "osptrack-import: 1/1 modules imported" in output(result, "import")
    # installed where a developer's `pip install --user` puts it, found there by the import phase
    home = info["persona"]["home"]
    written = {f["Path"] for f in result["Analysis"]["install"]["Files"] or [] if f["Write"]}
    assert f"{home}/.local/lib/python3.11/site-packages/needs_requests.py" in written


def test_a_version_the_persona_lacks_comes_from_the_registry(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    # a harmless stand-in named like a persona package, at a version the persona does not have
    old_idna = make_wheel(deps, "idna", "2.0.1", {"idna/__init__.py": "OSPTRACK_STANDIN = True\n"})
    assert python_pins()["idna"] != "2.0.1"
    wheel = make_wheel(
        tmp_path, "osptrack-needs-old-idna", "1.0",
        {"needs_old_idna.py": "import idna\nassert idna.OSPTRACK_STANDIN\n"},
        requires=("idna==2.0.1",),
    )  # fmt: skip
    outcome, info, result = run(tmp_path, wheel, (deps,))
    assert outcome.statuses == {"install": "completed", "import": "completed"}, output(
        result, "install", "Stderr"
    )
    assert any(c["name"] == "idna" and c["version"] == "2.0.1" and c["source"] == "deps-dir"
               for c in info["registry"]["closure"]), info["registry"]  # fmt: skip
    assert old_idna.exists()
    # the user site shadows the persona's idna, so the module imported is the registry's copy
    assert "osptrack-import: 1/1 modules imported" in output(result, "import"), output(
        result, "import", "Stderr"
    )


def test_the_package_under_analysis_is_installed_even_when_the_persona_has_its_version(
    tmp_path: Path,
) -> None:
    version = python_pins()["colorama"]
    wheel = make_wheel(
        tmp_path, "colorama", version, {"colorama/__init__.py": "print('osptrack-own-copy')\n"}
    )
    outcome, _, result = run(tmp_path, wheel)
    assert outcome.statuses == {"install": "completed", "import": "completed"}, output(
        result, "install", "Stderr"
    )
    assert "osptrack-own-copy" in output(result, "import"), output(result, "import", "Stderr")


def test_probes_are_left_out_only_of_an_install_that_can_run_no_package_code() -> None:
    from osptrack.ecosystems.base import Layout
    from osptrack.ecosystems.pypi import PyPI

    wheel = Layout("x", "1.0", "/input/pkg/x-1.0-py3-none-any.whl", ())
    sdist = Layout("x", "1.0", "/input/pkg/x-1.0.tar.gz", ())
    by_name = Layout("x", "1.0", None, ())
    pypi = PyPI()
    assert not pypi.probes_needed("install", wheel, True)
    assert not pypi.probes_needed("install", by_name, True)
    assert pypi.probes_needed("install", wheel, False)  # an sdist somewhere could be built
    assert pypi.probes_needed("install", sdist, True)  # its setup.py runs
    assert pypi.probes_needed("import", wheel, True) and pypi.probes_needed("execute", wheel, True)


def test_a_wheel_whose_dependency_is_an_sdist_still_traces_the_probes_of_its_build(tmp_path: Path) -> None:
    """An sdist the registry serves can run code while pip installs: the install phase of a wheel
    is traced with its probes as soon as one is servable, and the build's stat is recorded."""
    deps = tmp_path / "deps"
    deps.mkdir()
    from builders import make_sdist

    setup_py = (
        "import os\nos.path.exists(os.path.expanduser('~/.electrum'))\n"
        "from setuptools import setup\nsetup(name='osptrack-sdist-dep', version='1.0', py_modules=[])\n"
    )
    make_sdist(deps, "osptrack-sdist-dep", "1.0", setup_py)
    wheel = make_wheel(tmp_path, "osptrack-wheel-top", "1.0", {"wheel_top.py": "X = 1\n"},
                       requires=("osptrack-sdist-dep",))  # fmt: skip
    plain = make_wheel(tmp_path, "osptrack-wheel-plain", "1.0", {"wheel_plain.py": "X = 1\n"})
    # the build backend comes from the registry's seeded cache, as in a default run
    options = AnalyzeOptions(timeout_s=180, deps_dirs=(deps,), phases=("install",))
    out = tmp_path / "run-top"
    analyze(parse_target("pypi", str(wheel)), options, out)
    info = json.loads((out / "run.json").read_text())
    assert info["phases"]["install"]["probes_traced"] is True
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    electrum = [e for e in events if e.get("probe") == "wallet" and e["path"].endswith("/.electrum")]
    assert electrum, info["phases"]
    # Had this phase gone untraced for probes, run.json would name the build that ran in it.
    import msgspec

    from osptrack.digest import unprobed_package_code
    from osptrack.ecosystems.pypi import PyPI
    from osptrack.summary import toolchain_verdicts
    from osptrack.trace.events import Event

    typed = [msgspec.convert(e, Event) for e in events]
    missed = unprobed_package_code(typed, toolchain_verdicts(PyPI(), typed))
    assert any("setup.py" in m or "_in_process" in m for m in missed), missed
    # the same run without the sdist: no code of any package can run while pip installs
    (tmp_path / "deps-none").mkdir()
    out = tmp_path / "run-plain"
    empty = RegistryConfig(cache_root=tmp_path / "cache", seed_folders=(tmp_path / "deps-none",))
    analyze(
        parse_target("pypi", str(plain)),
        AnalyzeOptions(timeout_s=180, phases=("install",), registry=empty),
        out,
    )
    install = json.loads((out / "run.json").read_text())["phases"]["install"]
    assert install["probes_traced"] is False and "probes_missed_by" not in install, install


def test_the_persona_folder_s_bundle_walk_is_remembered_by_its_stamp(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from osptrack.sandbox import trust

    monkeypatch.setenv("OSPTRACK_CACHE", str(tmp_path / "cache"))
    site = tmp_path / "site"
    (site / "certifi").mkdir(parents=True)
    (site / "certifi" / "cacert.pem").write_text("x")
    (site / ".pins-aaaa").touch()
    assert trust._bundles_under(site) == [site / "certifi" / "cacert.pem"]
    (site / "other" / "certifi").mkdir(parents=True)
    (site / "other" / "certifi" / "cacert.pem").write_text("y")
    assert trust._bundles_under(site) == [site / "certifi" / "cacert.pem"]  # the same stamp: remembered
    (site / ".pins-aaaa").rename(site / ".pins-bbbb")  # what setup.sh does for a new pin list
    assert sorted(trust._bundles_under(site)) == [
        site / "certifi" / "cacert.pem",
        site / "other" / "certifi" / "cacert.pem",
    ]
    (site / ".pins-bbbb").unlink()  # no stamp: walked every time
    (site / "third" / "certifi").mkdir(parents=True)
    (site / "third" / "certifi" / "cacert.pem").write_text("z")
    assert len(trust._bundles_under(site)) == 3
