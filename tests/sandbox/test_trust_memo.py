"""The trust stores' per-machine memos (sandbox/trust.py): the walk for certifi bundles under
/usr and the /etc/ssl/certs skeleton's key are reused only while what they were computed from
is unchanged, and a memo that names anything a walk would not find is ignored."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from osptrack.sandbox import trust

OLD = time.time() - 3600


def _age(*paths: Path) -> None:
    for p in paths:
        os.utime(p, (OLD, OLD), follow_symlinks=False)


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    usr = tmp_path / "usr"
    bundle = usr / "lib" / "pkg" / "certifi" / "cacert.pem"
    bundle.parent.mkdir(parents=True)
    bundle.write_text("root\n")
    (usr / "lib" / "other").mkdir()
    _age(*[p for p in usr.rglob("*")], usr)
    monkeypatch.setattr(trust, "SYSTEM_BUNDLE_ROOTS", (str(usr / "lib"),))
    monkeypatch.setenv("OSPTRACK_CACHE", str(tmp_path / "cache"))
    trust._system_bundles.cache_clear()
    yield usr
    trust._system_bundles.cache_clear()


def _walk_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def walk(*args: object, **kwargs: object) -> None:
        raise AssertionError("walked again")

    monkeypatch.setattr(trust, "_walk_bundles", walk)


def _again() -> tuple[str, ...]:
    trust._system_bundles.cache_clear()  # a new process
    return trust._system_bundles()


def test_system_bundles_walk_is_reused_while_no_folder_changed(
    roots: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = trust._system_bundles()
    assert first == (str(roots / "lib" / "pkg" / "certifi" / "cacert.pem"),)
    with monkeypatch.context() as m:
        _walk_forbidden(m)
        assert _again() == first


def test_a_bundle_added_anywhere_is_found(roots: Path) -> None:
    trust._system_bundles()
    added = roots / "lib" / "other" / "deep" / "res" / "cacert.pem"
    added.parent.mkdir(parents=True)
    added.write_text("root\n")  # other/ gets a new mtime
    assert set(_again()) == {str(roots / "lib" / "pkg" / "certifi" / "cacert.pem"), str(added)}


def test_a_removed_bundle_is_gone(roots: Path) -> None:
    trust._system_bundles()
    (roots / "lib" / "pkg" / "certifi" / "cacert.pem").unlink()
    assert _again() == ()


def test_a_walk_over_a_folder_changed_just_now_is_not_remembered(
    roots: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.utime(roots / "lib" / "other")  # now: its listing may have raced a change
    trust._system_bundles()
    assert not (Path(os.environ["OSPTRACK_CACHE"]) / "trust" / "system-bundles.json").exists()


def test_a_memo_naming_other_files_is_ignored(roots: Path) -> None:
    trust._system_bundles()
    memo = Path(os.environ["OSPTRACK_CACHE"]) / "trust" / "system-bundles.json"
    text = memo.read_text()
    for forged in ("/etc/passwd", str(roots / "lib" / "pkg" / "certifi" / "missing.pem")):
        memo.write_text(text.replace(str(roots / "lib" / "pkg" / "certifi" / "cacert.pem"), forged))
        assert _again() == (str(roots / "lib" / "pkg" / "certifi" / "cacert.pem"),)  # walked
    memo.write_text("{not json")
    assert _again() == (str(roots / "lib" / "pkg" / "certifi" / "cacert.pem"),)


@pytest.fixture
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "ca-certificates.crt").write_text("bundle\n")
    os.symlink("/usr/share/ca-certificates/x/a.crt", folder / "a.pem")
    _age(folder / "ca-certificates.crt", folder / "a.pem", folder)
    monkeypatch.setattr(trust, "HOST_CERTS", folder)
    monkeypatch.setenv("OSPTRACK_CACHE", str(tmp_path / "cache"))
    trust._certs_skeleton.cache_clear()
    yield folder
    trust._certs_skeleton.cache_clear()


def _skeleton() -> Path:
    trust._certs_skeleton.cache_clear()  # a new process
    return trust._certs_skeleton("0a1b2c3d")


def test_skeleton_is_found_again_without_listing_the_folder(
    certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _skeleton()
    assert (first / "a.pem").is_symlink()
    with monkeypatch.context() as m:
        m.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(AssertionError("listed")))
        assert _skeleton() == first


def test_skeleton_follows_a_changed_bundle_and_a_new_link(certs: Path) -> None:
    first = _skeleton()
    (certs / "ca-certificates.crt").write_text("new bundle\n")  # in place: only its mtime changes
    second = _skeleton()
    assert second != first
    os.symlink("/usr/share/ca-certificates/x/b.crt", certs / "b.pem")
    third = _skeleton()
    assert third not in (first, second) and (third / "b.pem").is_symlink()
