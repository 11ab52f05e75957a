"""The archived /usr/lib/locale (sandbox/locales.py): the same locales inside, far fewer opens."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from osptrack.sandbox import locales
from osptrack.sandbox.bwrap import SandboxSpec, default_etc_files
from osptrack.sandbox.limits import Limits
from osptrack.sandbox.runner import Workspace, run_phase

pytestmark = pytest.mark.sandbox

HOST = Path(locales.LOCALE_DIR)
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
    monkeypatch.setattr(locales, "_BINDS", {})
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
    monkeypatch.setattr(locales, "_BINDS", {})
    assert locales.binds() == ((built, "/usr/lib/locale"),) and archive.stat().st_mtime_ns == stamp
    for entry in locales.compiled_locales(HOST):  # the folders are there, as on the host
        assert sorted(p.name for p in (Path(built) / entry.name).iterdir()) == sorted(
            p.name for p in entry.iterdir()
        )
    archive.chmod(0o666)  # anyone could have rewritten it: rebuilt, not trusted
    monkeypatch.setattr(locales, "_BINDS", {})
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
    monkeypatch.setattr(locales, "_BINDS", {})
    assert locales.binds(has_archive) == ()
    assert locales.binds(empty) == ()
    assert locales.binds(tmp_path / "missing") == ()
