"""Reading and writing the host: every attempt fails, is recorded, and the host is unchanged.

Sentinels are planted on the host first, at the paths a package would aim at. Inside the
sandbox those paths either do not exist (/work, the cache, another run's folder) or are the
sandbox's own tmpfs (/root, /tmp, /var/tmp), so both reads and writes miss the host.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from containment_helpers import (
    CACHE,
    REPO,
    WORK_ROOT,
    failed_paths,
    files_named,
    marker,
    py_wheel,
    record,
    run_analysis,
    stat_of,
)

pytestmark = pytest.mark.sandbox

PROBE = """
import os
def attempt(op, path, fn):
    try:
        fn(path)
        print("ATTEMPT", op, path, "OK")
    except OSError as exc:
        print("ATTEMPT", op, path, "ERR", exc.errno)
"""


def _listing(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


def _attempts(stdout: str) -> dict[tuple[str, str], str]:
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "ATTEMPT":
            found[(parts[1], parts[2])] = parts[3]
    return found


def test_reads_of_host_paths_fail_and_are_recorded(tmp_path: Path) -> None:
    tag = marker()
    secret = f"host-secret-{tag}"
    root_sentinel = Path(f"/root/{tag}.txt")
    other_run = tmp_path / "other-run"
    other_run.mkdir()
    (other_run / "run.json").write_text(f'{{"secret": "{secret}"}}')
    root_sentinel.write_text(secret)
    targets = [
        str(REPO / "pyproject.toml"),
        str(REPO / "src" / "osptrack" / "run.py"),
        str(root_sentinel),
        "/etc/shadow",
        str(other_run / "run.json"),
        str(CACHE / "build-tools"),
        str(WORK_ROOT),
        f"/proc/1/root{root_sentinel}",
        f"/proc/{os.getpid()}/environ",  # the test runner's own process, by host pid
    ]
    code = PROBE + "".join(
        f"attempt('read', {t!r}, lambda p: open(p, 'rb').read(64))\nattempt('list', {t!r}, os.listdir)\n"
        for t in targets
    )
    try:
        res = run_analysis(
            py_wheel(tmp_path, "contain-hostread", code), tmp_path / "out", phases=("install", "import")
        )
    finally:
        root_sentinel.unlink()
    attempts = _attempts(res.stdout("import"))
    assert len(attempts) == 2 * len(targets), res.stdout("import")
    assert {k: v for k, v in attempts.items() if v != "ERR"} == {}
    everything = (res.out / "result.json").read_text() + (res.out / "network.jsonl").read_text()
    assert secret not in everything and secret not in res.stdout("import")
    # Recorded: each read attempt is a failed open with its path and errno in events.jsonl.
    failed = failed_paths([e for e in res.events if e["phase"] == "import"])
    missing = [t for t in targets if t not in failed]
    assert missing == [], f"attempts not in events.jsonl: {missing}"
    record("host_read", attempts=len(attempts), recorded=len(targets) - len(missing))


def _sdist_with_links(dest: Path, name: str, links: dict[str, str], setup_py: str) -> Path:
    """An sdist carrying symlinks and a hardlink that point at host paths."""
    top = f"{name}-1.0"
    path = dest / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for rel, text in {
            "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
            "setup.py": setup_py,
        }.items():
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
        for rel, target in links.items():
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.type = tarfile.LNKTYPE if rel.startswith("hard") else tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def test_writes_to_host_paths_and_planted_symlinks_change_nothing(tmp_path: Path) -> None:
    tag = marker()
    out = tmp_path / "runs" / "out"
    out.parent.mkdir()
    sentinels = [Path(f"/tmp/{tag}-sentinel"), Path(f"/var/tmp/{tag}-sentinel"), Path(f"/root/{tag}-sentinel"),
                 tmp_path / f"{tag}-sentinel"]  # fmt: skip
    if CACHE.is_dir():
        sentinels.append(CACHE / f"{tag}-sentinel")
    for s in sentinels:
        s.write_text("untouched")
    watched = [Path("/tmp"), Path("/var/tmp"), Path("/root"), CACHE, tmp_path, out.parent, REPO, WORK_ROOT]
    strict = {str(d): _listing(d) for d in (tmp_path, out.parent, CACHE)}  # folders only this test writes
    before = {str(s): stat_of(s) for s in sentinels}
    aims = [*map(str, sentinels), f"/tmp/{tag}-new", f"/var/tmp/{tag}-new", f"/root/{tag}-new",
            str(CACHE / f"{tag}-new"), str(out.parent / f"{tag}-new"), str(out / f"{tag}-new"),
            str(REPO / f"{tag}-new"), str(WORK_ROOT / f"{tag}-new")]  # fmt: skip
    setup_py = (
        PROBE
        + "".join(f"attempt('write', {a!r}, lambda p: open(p, 'w').write('pwned'))\n" for a in aims)
        + (
            # follow the links the archive planted, and links made at run time
            "attempt('write', 'link-tmp', lambda p: open(p, 'w').write('pwned'))\n"
            "attempt('write', 'link-rel', lambda p: open(p, 'w').write('pwned'))\n"
            f"os.symlink({str(sentinels[2])!r}, os.path.expanduser('~/runtime-link'))\n"
            "attempt('write', os.path.expanduser('~/runtime-link'), lambda p: open(p, 'w').write('pwned'))\n"
            f"attempt('hardlink', {str(sentinels[0])!r}, lambda p: os.link(p, os.path.expanduser('~/hard')))\n"
            "from setuptools import setup\n"
            "setup(name='contain-hostwrite', version='1.0', py_modules=[])\n"
        )
    )
    links = {
        "link-tmp": str(sentinels[0]),
        "link-rel": "../" * 12 + str(sentinels[1]).lstrip("/"),
        "hard-link": str(sentinels[2]),
    }
    sdist = _sdist_with_links(tmp_path, "contain-hostwrite", links, setup_py)
    strict[str(tmp_path)].add(sdist.name)
    res = run_analysis(sdist, out, phases=("install",), timeout_s=120)
    assert res.statuses["install"] in ("completed", "error_analysis")
    # Nothing outside the run folder changed: sentinels, marker files, and strict listings.
    assert {str(s): stat_of(s) for s in sentinels} == before
    outside = [
        p for p in files_named(tag, watched, max_depth=2) if out not in p.parents and p not in sentinels
    ]
    assert outside == []
    for folder, names in strict.items():
        now = _listing(Path(folder))
        if folder == str(out.parent):
            names = names | {"out"}
        assert now == names, f"{folder} changed: {sorted(now ^ names)}"
    assert sorted(os.listdir(out)) == ["events.jsonl", "network.jsonl", "result.json", "run.json"]
    # The attempts really ran (setup.py, inside pip's build) and are in the trace.
    written = {
        e["path"] for e in res.events if e["kind"] == "file" and e["op"] in ("write", "create", "link")
    }
    assert [a for a in aims if a not in written] == []
    assert f"{res.run['persona']['home']}/runtime-link" in written
    for s in sentinels:
        s.unlink()
    record("host_write", aims=len(aims) + 5, host_changes=0)
