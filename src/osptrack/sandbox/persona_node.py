"""The persona's Node side: a global npm prefix holding what a developer installed with `-g`.

A developer who installs global packages without sudo follows npm's own advice ("Resolving
EACCES permissions errors"): `npm config set prefix ~/.npm-global` (a `prefix=` line in
~/.npmrc) and `~/.npm-global/bin` on PATH in ~/.profile. So inside the sandbox:

- `~/.npm-global` is the folder `scripts/setup.sh` filled (`$OSPTRACK_CACHE/persona-node`),
  bound read-only: `lib/node_modules/<pkg>` and the relative `bin/` links npm made;
- ~/.npmrc says `prefix=<home>/.npm-global`, so `npm root -g` and `npm prefix -g` name it;
- PATH starts with `<home>/.npm-global/bin` and NODE_PATH is `npm root -g`, so `yarn`, `tsc` or
  `require("typescript")` work as on that machine, and the three always agree.

Without the folder (setup.sh not run) none of this is set, so the machine stays consistent.
The packages are pinned with their integrity in persona_node.txt; `python -m
osptrack.sandbox.persona_node install` (setup.sh) fetches each with `npm pack` (plain bytes, no
script runs), checks it, and installs the checked tarballs with `--ignore-scripts`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PINS = Path(__file__).with_name("persona_node.txt")
HOST_DIR = "persona-node"  # under OSPTRACK_CACHE
PREFIX = ".npm-global"  # under the persona's home
_PROFILE_LINES = (
    "\n# npm global packages without sudo (npm docs: resolving EACCES permissions errors)\n"
    "export PATH=~/.npm-global/bin:$PATH\n"
    "export NODE_PATH=~/.npm-global/lib/node_modules\n"
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    integrity: str  # "sha512-<base64>"

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


def read_pins(path: Path = PINS) -> tuple[Pin, ...]:
    pins = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, integrity = line.partition(" ")
        name, _, version = spec.rpartition("@")
        if not name or not version or not integrity.strip().startswith("sha512-"):
            raise ValueError(f"{path.name}: not `name@version sha512-...`: {raw!r}")
        pins.append(Pin(name, version, integrity.strip()))
    return tuple(pins)


def stamp(path: Path = PINS) -> str:
    """The marker file that says the folder holds exactly this pin list."""
    return ".pins-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def host_dir() -> Path | None:
    """The filled global prefix on the host, if setup.sh made it."""
    path = Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / HOST_DIR
    return path if (path / "lib" / "node_modules").is_dir() else None


def prefix(home: str) -> str:
    return f"{home}/{PREFIX}"


def binds(home: str) -> tuple[tuple[str, str], ...]:
    found = host_dir()
    return ((str(found), prefix(home)),) if found is not None else ()


def env(home: str, path: str) -> dict[str, str]:
    """PATH and NODE_PATH as the persona's ~/.profile sets them (empty without the prefix)."""
    if host_dir() is None:
        return {}
    return {"PATH": f"{prefix(home)}/bin:{path}", "NODE_PATH": f"{prefix(home)}/lib/node_modules"}


def seed_home(host_home: Path, home: str, uid: int, gid: int) -> None:
    """The home's side of the setup: the mount point, ~/.npmrc's prefix, ~/.profile's lines.
    Runs after the baits are planted (~/.npmrc is one: its token line stays as it was)."""
    if host_dir() is None:
        return
    mount = host_home / PREFIX
    mount.mkdir(mode=0o755, exist_ok=True)
    os.chown(mount, uid, gid)
    npmrc = host_home / ".npmrc"
    existing = npmrc.read_text() if npmrc.exists() else ""
    npmrc.write_text(f"prefix={prefix(home)}\n{existing}")
    npmrc.chmod(0o600)
    os.chown(npmrc, uid, gid)
    profile = host_home / ".profile"
    if profile.exists():
        with profile.open("a") as fh:
            fh.write(_PROFILE_LINES)


# --------------------------------------------------------------------------- setup.sh


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def install(dest: Path, npm: str = "npm") -> bool:
    """Fill `dest` with the pinned global packages unless it already holds this pin list.
    Atomic: built in a temp folder beside it, then renamed. Returns whether it installed."""
    marker = stamp()
    if (dest / marker).exists():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        tarballs = tmp / "tarballs"
        tarballs.mkdir()
        built = tmp / "prefix"
        files = []
        for pin in read_pins():
            out = subprocess.run(
                [npm, "pack", "--silent", "--ignore-scripts", "--pack-destination", str(tarballs), pin.spec],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            tgz = tarballs / out.stdout.strip().splitlines()[-1]
            got = integrity_of(tgz.read_bytes())
            if got != pin.integrity:
                raise SystemExit(f"persona-node: {pin.spec}: integrity {got[:24]}... is not the pinned one")
            files.append(str(tgz))
        subprocess.run(
            [npm, "install", "--global", "--prefix", str(built), "--ignore-scripts", "--offline",
             "--no-audit", "--no-fund", "--loglevel", "error", *files],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        (built / marker).touch()
        for path in (built, *built.rglob("*")):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            dest.rename(old)
        built.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["install"]:
        dest = (
            Path(argv[2])
            if len(argv) > 2
            else Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / HOST_DIR
        )
        try:
            done = install(dest)
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or "").strip().splitlines()[-1:] or ["(no output)"]
            print(f"persona-node: {' '.join(exc.cmd[:3])} failed: {tail[0]}", file=sys.stderr)
            return 1
        specs = ", ".join(p.spec for p in read_pins())
        print(f"persona-node {dest}: {'installed' if done else 'up to date'} ({specs})")
        return 0
    print("usage: python -m osptrack.sandbox.persona_node install [DEST]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
