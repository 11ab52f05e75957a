"""The archived /usr/lib/locale (sandbox/locales.py): the host's locales and the persona's inside,
far fewer opens."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from builders import make_sdist
from kept_views import analyze_keeping
from osptrack.sandbox import locales
from osptrack.sandbox.bwrap import SandboxSpec, default_etc_files
from osptrack.sandbox.limits import Limits
from osptrack.sandbox.persona import choose_persona
from osptrack.sandbox.runner import Workspace, run_phase

pytestmark = pytest.mark.sandbox

HOST = Path(locales.LOCALE_DIR)
I18N = Path(locales.I18N_DIR)
PERSONA_LOCALES = locales.named(choose_persona().env())  # what the persona's LANG/LC_* name
needs_sources = pytest.mark.skipif(
    not shutil.which("localedef")
    or not all(isinstance(locales.recipe(n, I18N), locales.Recipe) for n in PERSONA_LOCALES),
    reason="no localedef, or glibc's locale sources (Debian package `locales`) lack a persona locale",
)
needs_folders = pytest.mark.skipif(
    (HOST / locales.ARCHIVE).exists() or not locales.compiled_locales(HOST) or not shutil.which("localedef"),
    reason="the host already has a locale-archive, or no compiled locale folder, or no localedef",
)

# What a process can learn about its locales: names, every category's data, Python's view with the
# persona's LANG (en_US.UTF-8, absent: setlocale fails as before) and PEP 538's coercion, perl's
# complaint, and the folder's entries other than the archive.
PROBE = r"""
locale -a
LC_ALL=C.UTF-8 locale -k LC_CTYPE LC_NUMERIC LC_TIME LC_COLLATE LC_MONETARY LC_MESSAGES LC_PAPER LC_NAME LC_ADDRESS LC_TELEPHONE LC_MEASUREMENT LC_IDENTIFICATION
locale 2>&1
LC_ALL=C.UTF-8 date -d @0 '+%c %x %A'
python3 -c 'import locale, os, sys; print(locale.setlocale(locale.LC_ALL, None), sys.getfilesystemencoding(), locale.getpreferredencoding(), os.environ.get("LC_CTYPE"), locale.localeconv()["decimal_point"])'
perl -e 'print "perl ok\n"' 2>&1
LC_ALL=C.UTF-8 perl -MPOSIX -e 'print POSIX::setlocale(POSIX::LC_ALL()), "\n"' 2>&1
find /usr/lib/locale -mindepth 1 ! -name locale-archive -printf '%P %y %s %m %T@\\n' | sort
echo LOCPATH=${LOCPATH-unset}
"""


@pytest.fixture
def cache(monkeypatch) -> Iterator[Path]:
    """A cache root bwrap (run as nobody) can reach, as /var/cache/osptrack is; pytest's tmp_path is not."""
    root = Path(tempfile.mkdtemp(prefix="osptrack-locale-test-", dir="/var/tmp"))
    root.chmod(0o755)
    monkeypatch.setenv("OSPTRACK_CACHE", str(root))
    monkeypatch.setattr(locales, "_VIEWS", {})
    yield root
    shutil.rmtree(root, ignore_errors=True)


def traced(log: Path) -> list[str]:
    return ["strace", "-f", "-qq", "-o", str(log), "-u", "nobody", "-e", "trace=openat", "--"]


def sandboxed(binds: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """(stdout, the trace log) of PROBE in a sandbox with the persona's LANG and `binds`."""
    limits = Limits(timeout_s=60)
    with Workspace(limits) as ws:
        spec = SandboxSpec(
            home=ws.home,
            input_dir=ws.input,
            etc_files=default_etc_files("127.0.0.53"),
            env={"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "en_US.UTF-8"},
            ro_binds=binds,
        )
        run_id = f"loc{os.getpid()}x{time.monotonic_ns()}"
        out = run_phase(
            "install",
            spec,
            ws,
            ["/bin/bash", "-c", f"{{ {PROBE} }} > /root/probe.txt"],
            traced,
            limits,
            None,
            run_id,
        )
        assert out.exit_code == 0, out.stderr
        return (ws.home / "probe.txt").read_text(), out.trace_log.read_text(errors="replace")


@needs_folders
def test_the_sandbox_sees_the_same_locales_with_far_fewer_opens(cache: Path) -> None:
    binds = locales.binds()
    assert binds and binds[0][1] == "/usr/lib/locale"
    before, before_log = sandboxed(())
    after, after_log = sandboxed(binds)
    assert after == before  # every name, category, coercion and message is what it was
    assert "LOCPATH=unset" in after and "C.UTF-8" in after
    # Each setlocale() of C.UTF-8 walked the folder, twice per category (as given, normalised);
    # now it finds them in the archive. en_US.UTF-8's lookups fail in the folder as before.
    c_utf8 = re.compile(r'"/usr/lib/locale/C\.(?:UTF-8|utf8)/LC_[A-Z]+"')
    assert len(c_utf8.findall(before_log)) >= 20
    assert c_utf8.findall(after_log) == []
    en_us = re.compile(r'"/usr/lib/locale/en[^"]*/LC_CTYPE"')
    assert len(en_us.findall(after_log)) == len(en_us.findall(before_log)) > 0
    assert '"/usr/lib/locale/locale-archive", O_RDONLY|O_CLOEXEC) = 3' in after_log


@needs_folders
def test_the_archive_is_built_once_and_a_foreign_copy_is_not_used(cache: Path, monkeypatch) -> None:
    ((built, _),) = locales.binds()
    archive = Path(built) / locales.ARCHIVE
    stamp = archive.stat().st_mtime_ns
    monkeypatch.setattr(locales, "_VIEWS", {})
    assert locales.binds() == ((built, "/usr/lib/locale"),) and archive.stat().st_mtime_ns == stamp
    for entry in locales.compiled_locales(HOST):  # the folders are there, as on the host
        assert sorted(p.name for p in (Path(built) / entry.name).iterdir()) == sorted(
            p.name for p in entry.iterdir()
        )
    archive.chmod(0o666)  # anyone could have rewritten it: rebuilt, not trusted
    monkeypatch.setattr(locales, "_VIEWS", {})
    assert locales.binds() == ((built, "/usr/lib/locale"),)
    assert not archive.stat().st_mode & 0o022


def test_nothing_is_bound_where_it_would_not_help(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OSPTRACK_CACHE", str(tmp_path / "cache"))
    has_archive = tmp_path / "with-archive"
    (has_archive / "C.utf8").mkdir(parents=True)
    (has_archive / "C.utf8" / "LC_CTYPE").write_bytes(b"x")
    (has_archive / locales.ARCHIVE).write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(locales, "_VIEWS", {})
    assert locales.binds(root=has_archive) == ()
    assert locales.binds(root=empty) == ()
    assert locales.binds(root=tmp_path / "missing") == ()


# --- the persona's locales ------------------------------------------------------------------------


def test_the_locales_come_from_the_environment_it_names() -> None:
    env = {"LANG": "en_US.UTF-8", "LC_TIME": "en_GB.UTF-8", "LC_ALL": "", "LC_COLLATE": "C",
           "LANGUAGE": "en_US:en", "HOME": "/home/x"}  # fmt: skip
    assert locales.named(env) == ("en_GB.UTF-8", "en_US.UTF-8")
    assert choose_persona().env()["LANG"] in PERSONA_LOCALES
    assert locales.normalised("en_US.UTF-8") == "en_US.utf8"
    assert locales.normalised("de_DE.ISO-8859-15@euro") == "de_DE.iso885915@euro"
    assert locales.normalised("ja_JP.8859") == "ja_JP.iso8859"


def _fake_i18n(root: Path, *languages: str) -> Path:
    """Sources shaped as Debian's `locales` ships them (contents irrelevant to the key)."""
    (root / "locales").mkdir(parents=True)
    (root / "charmaps").mkdir()
    (root / "charmaps" / "UTF-8.gz").write_bytes(b"charmap")
    (root / "locales" / "i18n").write_text("LC_CTYPE\nEND LC_CTYPE\n")
    for language in languages:
        (root / "locales" / language).write_text('LC_CTYPE\ncopy "i18n"\nEND LC_CTYPE\n')
    (root / "SUPPORTED").write_text("".join(f"{lang}.UTF-8 UTF-8\n" for lang in languages))
    return root


def test_the_cache_key_changes_with_the_set_of_locales_and_their_sources(tmp_path: Path) -> None:
    root = tmp_path / "lib-locale"
    (root / "C.utf8").mkdir(parents=True)
    (root / "C.utf8" / "LC_CTYPE").write_bytes(b"ctype")
    i18n = _fake_i18n(tmp_path / "i18n", "en_US", "de_DE")
    en, de = (locales.recipe(n, i18n) for n in ("en_US.UTF-8", "de_DE.UTF-8"))
    assert isinstance(en, locales.Recipe) and isinstance(de, locales.Recipe)
    assert (en.input, en.charmap) == ("en_US", "UTF-8")
    keys = {
        "host only": locales.cache_key(root, (), i18n),
        "en": locales.cache_key(root, (en,), i18n),
        "en+de": locales.cache_key(root, (en, de), i18n),
    }
    assert len(set(keys.values())) == 3, keys
    assert locales.cache_key(root, (de, en), i18n) == keys["en+de"]  # a set: order does not matter
    # A source any locale may `copy` from changed: a new build, not the old one.
    (i18n / "locales" / "i18n").write_text("LC_CTYPE\n% edited\nEND LC_CTYPE\n")
    assert locales.cache_key(root, (en,), i18n) != keys["en"]
    assert locales.cache_key(root, (), i18n) == keys["host only"]  # it reads no source


def test_a_locale_without_sources_is_reported_missing_and_the_rest_still_bound(
    tmp_path: Path, cache: Path
) -> None:
    i18n = _fake_i18n(tmp_path / "i18n")  # Debian's `locales` absent: no source of en_US
    view = locales.view(("en_US.UTF-8",), HOST, i18n)
    assert view.locales == {"en_US.UTF-8": f"missing: no {i18n}/locales/en_US (Debian package `locales`)"}
    assert view.binds == locales.binds(root=HOST)  # the host's locales, archived as before
    nowhere = locales.view(("xx_YY",), HOST, i18n).locales["xx_YY"]
    assert nowhere.startswith("missing: xx_YY names no codeset")


@needs_sources
def test_each_set_of_locales_gets_its_own_archive(cache: Path) -> None:
    persona = locales.view(PERSONA_LOCALES)
    assert set(persona.locales.values()) <= {"compiled", "host"} and persona.binds
    more = locales.view((*PERSONA_LOCALES, "de_DE.UTF-8"))
    assert more.locales["de_DE.UTF-8"] == "compiled" and more.binds[0][0] != persona.binds[0][0]
    listed = locales.archived(shutil.which("localedef") or "", Path(more.binds[0][0]) / locales.ARCHIVE)
    assert "de_DE.utf8" in listed and not {"de_DE.utf8"} & locales.archived(
        shutil.which("localedef") or "", Path(persona.binds[0][0]) / locales.ARCHIVE
    )
    locales._VIEWS.clear()  # a later process: the build and its note are reused, not rebuilt
    stamp = (Path(persona.binds[0][0]) / locales.ARCHIVE).stat().st_mtime_ns
    assert locales.view(PERSONA_LOCALES) == persona
    assert (Path(persona.binds[0][0]) / locales.ARCHIVE).stat().st_mtime_ns == stamp


@needs_folders
@needs_sources
def test_the_persona_locale_loads_and_the_host_locales_are_unchanged(cache: Path) -> None:
    host_only, _ = sandboxed(locales.binds())
    view = locales.view(PERSONA_LOCALES)
    with_persona, log = sandboxed(view.binds)
    lines = with_persona.splitlines()
    for name in PERSONA_LOCALES:
        assert locales.normalised(name) in lines  # `locale -a`
    # The C.UTF-8 data (locale -k of every category under LC_ALL=C.UTF-8, date) is the same.
    categories = [ln for ln in host_only.splitlines() if re.match(r"[a-z0-9-]+=", ln)]  # locale -k's
    assert categories and all(ln in lines for ln in categories)
    assert [ln for ln in host_only.splitlines() if "1970" in ln][0] in lines  # date's formats
    assert "Cannot set" not in with_persona and "Setting locale failed" not in with_persona
    assert "Cannot set" in host_only  # the probe can tell: without the archive's en_US it warns
    # Found in the archive: no per-category lookup of the persona's locale in the folder.
    assert re.findall(r'"/usr/lib/locale/en[^"]*/LC_[A-Z]+"', log) == []


# Harmless: what a package's setup.py (and import) can learn about its locale, written to its home.
LOCALE_PROBE = r"""
import json, locale, os, subprocess
seen = {"LANG": os.environ.get("LANG"), "LC_CTYPE": os.environ.get("LC_CTYPE")}
try:
    seen["setlocale"] = locale.setlocale(locale.LC_ALL, "")
    seen["codeset"] = locale.nl_langinfo(locale.CODESET)
except locale.Error as exc:
    seen["setlocale"] = "error: %s" % exc
run = lambda *argv: subprocess.run(argv, capture_output=True, text=True)
seen["locale -a"] = run("locale", "-a").stdout.split()
shown = run("locale")
seen["locale"], seen["locale stderr"] = shown.stdout, shown.stderr
seen["perl stderr"] = run("perl", "-e", "1").stderr
seen["locale.alias"] = os.path.isfile("/usr/share/locale/locale.alias")  # a link into /etc on Debian
with open(os.path.expanduser("~/locale-%s.json" % PHASE), "w") as fh:
    json.dump(seen, fh)
"""


def _run_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict, dict]:
    """(what setup.py saw, what the import saw, run.json) of a real run of a harmless sdist."""
    import json

    setup_py = "PHASE = 'install'\n" + LOCALE_PROBE + "\nfrom setuptools import setup\n"
    setup_py += "setup(name='locale-probe', version='1.0', packages=['locale_probe'])\n"
    sdist = make_sdist(
        tmp_path,
        "locale-probe",
        "1.0",
        setup_py,
        {"locale_probe/__init__.py": "PHASE = 'import'\n" + LOCALE_PROBE},
    )
    out, kept = analyze_keeping(tmp_path, monkeypatch, sdist, "locale-*.json")
    return (
        json.loads((kept / "locale-install.json").read_text()),
        json.loads((kept / "locale-import.json").read_text()),
        json.loads((out / "run.json").read_text()),
    )


@needs_sources
def test_inside_a_run_the_persona_locale_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install, imported, run_json = _run_probe(tmp_path, monkeypatch)
    assert run_json["sandbox"]["locales"] == {n: run_json["sandbox"]["locales"][n] for n in PERSONA_LOCALES}
    assert set(run_json["sandbox"]["locales"].values()) <= {"compiled", "host"}
    for seen in (install, imported):
        assert seen["LANG"] in PERSONA_LOCALES
        assert {locales.normalised(n) for n in PERSONA_LOCALES} <= set(seen["locale -a"]), seen
        assert seen["setlocale"] == seen["LANG"], seen  # Python's setlocale(LC_ALL, "") succeeds
        assert seen["codeset"] == "UTF-8"
        assert "Cannot set" not in seen["locale stderr"] and f'LC_CTYPE="{seen["LANG"]}"' in seen["locale"]
        assert "Setting locale failed" not in seen["perl stderr"], seen["perl stderr"]
        assert seen["LC_CTYPE"] is None  # nothing coerced (PEP 538): as in a workstation's terminal
        assert seen["locale.alias"] == Path("/usr/share/locale/locale.alias").is_file()  # as on the host


def test_a_run_without_locale_sources_says_so_and_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    monkeypatch.setattr(locales, "I18N_DIR", str(_fake_i18n(tmp_path / "no-sources")))
    install, _, run_json = _run_probe(tmp_path, monkeypatch)
    for name in PERSONA_LOCALES:
        assert run_json["sandbox"]["locales"][name].startswith("missing: no "), run_json["sandbox"]
    assert install["setlocale"].startswith("error") and "Cannot set" in install["locale stderr"]


@needs_folders
@needs_sources
def test_a_host_archive_is_kept_and_only_what_it_lacks_is_added(tmp_path: Path, cache: Path) -> None:
    localedef = shutil.which("localedef") or ""
    host_only = Path(locales.binds()[0][0])  # an archive of the host's folders: no persona locale
    lacking = tmp_path / "lacking"
    shutil.copytree(host_only, lacking)
    view = locales.view(PERSONA_LOCALES, lacking)
    assert set(view.locales.values()) == {"compiled"} and view.binds
    built = Path(view.binds[0][0]) / locales.ARCHIVE
    assert locales.archived(localedef, lacking / locales.ARCHIVE) < locales.archived(localedef, built)
    having = tmp_path / "having"  # a workstation's: the archive holds them already
    shutil.copytree(Path(view.binds[0][0]), having)
    assert locales.view(PERSONA_LOCALES, having) == locales.LocaleView(
        (), dict.fromkeys(PERSONA_LOCALES, "host")
    )
