"""What the package sees of the sandbox's mount layout, pinned from inside a real run.

bwrap's own set-up is traced like the package's calls, so the layout is kept to few, shallow
binds (bwrap.write_etc: /etc is one prepared folder; sources relative to the workspace). These
tests pin that the view did not change with it: which paths exist, what they hold (against the
host's own files), who owns them and which are read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from builders import make_sdist
from kept_views import analyze_keeping
from osptrack.sandbox.bwrap import HOST_ETC, SandboxSpec, bwrap_argv, write_etc
from osptrack.sandbox.persona import UID, choose_persona, overlay_files

# Harmless: it looks at its own sandbox and writes what it saw into its home.
PROBE = """
import errno, hashlib, json, os, stat

def entry(p):
    try:
        st = os.lstat(p)
    except OSError as e:
        return {"err": errno.errorcode[e.errno]}
    d = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid}
    if stat.S_ISLNK(st.st_mode):
        d["link"] = os.readlink(p)
    elif stat.S_ISREG(st.st_mode):
        try:
            with open(p, "rb") as fh:
                d["sha"] = hashlib.sha256(fh.read()).hexdigest()
        except OSError as e:
            d["sha"] = errno.errorcode[e.errno]
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_APPEND))
            d["w"] = "ok"
        except OSError as e:
            d["w"] = errno.errorcode[e.errno]
    elif stat.S_ISDIR(st.st_mode):
        try:
            d["ls"] = sorted(os.listdir(p))
        except OSError as e:
            d["ls"] = errno.errorcode[e.errno]
        try:
            fd = os.open(os.path.join(p, ".w"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.unlink(os.path.join(p, ".w"))
            d["w"] = "ok"
        except OSError as e:
            d["w"] = errno.errorcode[e.errno]
    return d

seen = {}
def walk(p, depth):
    seen[p] = e = entry(p)
    if depth and isinstance(e.get("ls"), list):
        for n in e["ls"]:
            walk(os.path.join(p, n), depth - 1)

for root, depth in (("/", 1), ("/etc", 2), ("/sys", 4), ("/usr/local", 1), ("/input", 1),
                    ("/proc/cpuinfo", 0), ("/usr/bin/systemd-detect-virt", 0)):
    walk(root, depth)
with open(os.path.expanduser("~/view-%s.json" % PHASE), "w") as fh:
    json.dump(seen, fh)
"""

SETUP_PY = (
    "PHASE = 'install'\n"
    + PROBE
    + "\nfrom setuptools import setup\nsetup(name='layout-probe', version='1.0', packages=['layout_probe'])\n"
)

OVERFLOW_UID = 65534  # a host owner outside the sandbox's user namespace (host root) shows as this


def _views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any], dict]:
    sdist = make_sdist(
        tmp_path, "layout-probe", "1.0", SETUP_PY, {"layout_probe/__init__.py": "PHASE = 'import'\n" + PROBE}
    )
    out, kept = analyze_keeping(tmp_path, monkeypatch, sdist, "view-*.json")
    persona = json.loads((out / "run.json").read_text())["persona"]
    install = json.loads((kept / "view-install.json").read_text())
    return install, json.loads((kept / "view-import.json").read_text()), persona


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.sandbox
def test_the_package_sees_the_same_etc_sys_and_root_in_both_phases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install, view, persona = _views(tmp_path, monkeypatch)
    generated = {"passwd", "group", "hosts", "hostname", "resolv.conf", "nsswitch.conf", "machine-id"}
    host_entries = {n for n in HOST_ETC if os.path.lexists(f"/etc/{n}")}

    # /etc: exactly the host entries the toolchains need and the generated files; a read-only
    # folder of the sandbox's user, as bwrap's tmpfs was.
    etc = view["/etc"]
    assert set(etc["ls"]) == host_entries | generated
    assert stat.S_ISDIR(etc["mode"]) and stat.S_IMODE(etc["mode"]) == 0o755
    assert (etc["uid"], etc["gid"], etc["w"]) == (UID, UID, "EROFS")
    for name in host_entries:
        host, seen = f"/etc/{name}", view[f"/etc/{name}"]
        if os.path.islink(host) and os.path.realpath(host).startswith("/usr/"):
            # a symlink into /usr stays one, the sandbox user's (bwrap's --symlink made it so)
            assert (seen.get("link"), seen["uid"]) == (os.readlink(host), UID), name
            continue
        st = os.stat(host)
        assert stat.S_IFMT(seen["mode"]) == stat.S_IFMT(st.st_mode), name
        assert stat.S_IMODE(seen["mode"]) == stat.S_IMODE(st.st_mode), name
        assert seen["uid"] == (UID if st.st_uid == OVERFLOW_UID else OVERFLOW_UID), name
        assert seen["w"] in ("EROFS", "EACCES"), name
        if stat.S_ISDIR(st.st_mode):
            assert seen["ls"] == sorted(os.listdir(host)), name
        else:
            assert seen["sha"] == _sha(host), name
    for name in generated:
        seen = view[f"/etc/{name}"]
        assert stat.S_ISREG(seen["mode"]) and stat.S_IMODE(seen["mode"]) == 0o644, name
        assert seen["uid"] == OVERFLOW_UID and seen["w"] == "EACCES", name
    assert view["/etc/hostname"]["sha"] == hashlib.sha256(f"{persona['hostname']}\n".encode()).hexdigest()
    assert view["/etc/ssl/certs"]["w"] == "EROFS"
    # One machine: the generated files (machine-id included) are the same in both phases.
    assert {n: install[f"/etc/{n}"] for n in generated} == {n: view[f"/etc/{n}"] for n in generated}

    # The persona's files over /proc, /sys and /usr: read-only, in the folders bwrap made for them.
    overlay = overlay_files(choose_persona())  # its paths and modes are every persona's
    assert view["/sys/class/dmi/id"]["ls"] == sorted(Path(p).name for p in overlay if p.startswith("/sys/"))
    for path, (_, mode) in overlay.items():
        assert view[path]["w"] == "EACCES" and stat.S_IMODE(view[path]["mode"]) == mode, path
    for folder in ("/sys", "/sys/class", "/sys/class/dmi", "/sys/class/dmi/id"):
        assert (view[folder]["uid"], stat.S_IMODE(view[folder]["mode"])) == (UID, 0o700), folder
    assert view["/sys"]["ls"] == ["class"]

    # The root: nothing of the host beyond what the layout binds; /input and /usr/local read-only.
    top = set(view["/"]["ls"])
    assert {"etc", "usr", "proc", "dev", "tmp", "var", "input", "home", "sys"} <= top
    assert not top & {"work", "opt", "run", "srv", "mnt", "boot", "root", "media"}
    assert view["/input"]["w"] == view["/usr/local"]["w"] == "EROFS"
    assert view["/tmp"]["w"] == "ok"


def _spec(tmp_path: Path, **kw: Any) -> SandboxSpec:
    root = tmp_path / "ws"
    (root / "home").mkdir(parents=True)
    (root / "input").mkdir()
    return SandboxSpec(
        home=root / "home", input_dir=root / "input", etc_files={"passwd": "x\n"}, env={}, **kw
    )


def _binds(argv: list[str]) -> list[tuple[str, str, str]]:
    return [(argv[i], argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]


def test_etc_is_one_read_only_folder_with_the_host_folders_bound_in_it(tmp_path: Path) -> None:
    spec = _spec(tmp_path, extra_etc=("osptrack-no-such-entry",))
    etc = tmp_path / "ws" / "etc"
    write_etc(spec, etc)
    argv = bwrap_argv(spec, etc, 3, ["true"])
    assert ["--tmpfs", "/etc"] not in [argv[i : i + 2] for i in range(len(argv))]
    assert ["--remount-ro", "/etc"] not in [argv[i : i + 2] for i in range(len(argv))]
    binds = _binds(argv)
    assert ("--ro-bind", str(etc), "/etc") in binds
    under_etc = [b for b in binds if b[2].startswith("/etc/")]
    # Only folders are bound (files are copies, symlinks are symlinks), each from the host's own path.
    assert under_etc and all(s == d and os.path.isdir(s) for _, s, d in under_etc)
    assert not (etc / "osptrack-no-such-entry").exists()
    assert (etc / "passwd").read_text() == "x\n"
    for name in HOST_ETC:
        host = Path("/etc") / name
        if host.is_file() and not host.is_symlink():
            assert (etc / name).read_bytes() == host.read_bytes() and not (etc / name).is_symlink()


def test_workspace_sources_are_relative_to_the_workspace_but_none_inside_the_home(tmp_path: Path) -> None:
    spec = _spec(tmp_path, ro_binds=((str(tmp_path / "ws" / "home" / "x"), "/opt/x"), ("/usr/share", "/srv")))
    root = tmp_path / "ws"
    write_etc(spec, root / "etc")
    sources = {d: s for _, s, d in _binds(bwrap_argv(spec, root / "etc", 3, ["true"], base=root))}
    assert sources["/etc"] == "etc" and sources["/input"] == "input" and sources["/root"] == "home"
    # the package writes inside its home (and may plant symlinks there): such a source stays absolute
    assert sources["/opt/x"] == str(root / "home" / "x") and sources["/srv"] == "/usr/share"
    assert all((root / s).exists() for s in sources.values() if not s.startswith("/"))


def test_relative_sources_resolve_from_bwraps_working_directory(tmp_path: Path) -> None:
    """glibc's realpath of a relative name starts from getcwd(): what makes them cheap, and what
    the runner's cwd= must match. A bwrap started elsewhere fails rather than binding another path."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    import subprocess

    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    (root / "data" / "f").write_text("bound\n")
    argv = [
        "bwrap",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/lib",
        "/lib",
    ]
    argv += [
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--ro-bind",
        "data",
        "/data",
        "--",
        "/usr/bin/cat",
        "/data/f",
    ]
    ok = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and ok.stdout == "bound\n", ok.stderr
    elsewhere = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert elsewhere.returncode != 0 and "data" in elsewhere.stderr
