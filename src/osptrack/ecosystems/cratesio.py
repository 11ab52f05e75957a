"""crates.io: `cargo build` of a stub that depends on the crate, against the registry service, then `cargo run` it.

Toolchain: the rustup stable toolchain found on the host (here /root/.rustup/toolchains/
stable-*, rustc 1.95) is bound read-only at /opt/rust/toolchain; nothing else of /root is
visible. Debian 12's own cargo/rustc (1.63) is used only when no rustup toolchain exists: it is
cleaner but too old for much of today's crates.io (edition 2021 features, `rust-version`
fields, newer Cargo.lock formats), so a run with it would fail for reasons unrelated to the
package. CARGO_HOME is ~/.cargo inside the sandbox, i.e. on the run's fresh tmpfs home.

cargo resolves the crate and its dependencies against the registry service's sparse index,
which replaces crates.io (`registry/cratesio.py`, harness/cratesio_install.py): the --deps-dir
crates, the host's cache and, with --online, crates.io as fetched by osptrack on the host. Hyphenated names work: the stub
depends on the package name and `use`s the library name (hyphens become underscores, or the
crate's own `[lib] name`), the bug package-analysis has.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import semantic_version

from osptrack.ecosystems.archives import depth, not_a, read_member, staged_name
from osptrack.ecosystems.base import Ecosystem, Layout, Metadata, install_harness_argv
from osptrack.errors import BadInput, ToolchainMissing
from osptrack.jsonio import atomic_write_bytes
from osptrack.registry.cratesio import INDEX_URL as CRATES_INDEX_URL
from osptrack.target import validate_name, validate_version
from osptrack.trace.roles import ROOT, Role, Rule, installed

SANDBOX_TOOLCHAIN = "/opt/rust/toolchain"
STUB = "~/.osptrack-crates/stub"
# bwrap runs as host `nobody`: a toolchain under /root needs the setup script's readable link.
RUSTUP_INSTALL = "scripts/setup-toolchains.sh (or: apt-get install -y cargo, Debian's older Rust)"


DEFAULT_LINKED_TOOLCHAIN = "/opt/osptrack/rust-toolchain"  # made by scripts/setup-toolchains.sh


@functools.cache
def host_sysroot() -> str | None:
    """The Rust toolchain folder (with bin/cargo and bin/rustc) to bind into the sandbox.

    bwrap starts as host `nobody`, so the folder must be reachable by others: rustup's own
    (under /root) is not, and scripts/setup-toolchains.sh hard-links it to /opt/osptrack.
    """
    configured = os.environ.get("OSPTRACK_RUST_TOOLCHAIN")
    candidates = [configured] if configured else [DEFAULT_LINKED_TOOLCHAIN]
    for rustc in (shutil.which("rustc"), str(Path.home() / ".cargo" / "bin" / "rustc"), "/usr/bin/rustc"):
        if not configured and rustc and Path(rustc).exists():
            try:
                out = subprocess.run(
                    [rustc, "--print", "sysroot"], capture_output=True, text=True, timeout=30
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(out.stdout.strip())
    for sysroot in candidates:
        if Path(sysroot, "bin", "cargo").exists() and _others_can_read(Path(sysroot, "bin", "cargo")):
            return sysroot
    return None


def _others_can_read(path: Path) -> bool:
    """True if a user with no relation to the owner (the sandbox's host uid) can reach `path`."""
    try:
        if not path.stat().st_mode & 0o004:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in path.parents)
    except OSError:
        return False


class CratesIo(Ecosystem):
    name = "crates.io"
    registry_hosts = ("index.crates.io", "static.crates.io", "crates.io")
    suffixes = (".crate",)
    toolchain = (("cc", "gcc"),)
    phases = ("install", "import", "execute")

    def check_toolchain(self) -> None:
        super().check_toolchain()
        if host_sysroot() is None:
            raise ToolchainMissing(f"crates.io needs a Rust toolchain (cargo, rustc); run: {RUSTUP_INSTALL}")

    def read_metadata(self, archive: Path) -> Metadata:
        found = read_member(archive, lambda n: depth(n) == 1 and n.endswith("/Cargo.toml"))
        if found is None:
            raise not_a(archive, "a crate (no Cargo.toml)", self.name)
        try:
            package = tomllib.loads(found[1].decode())["package"]
            name, version = str(package["name"]).strip(), str(package["version"]).strip()
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
            raise BadInput(f"{archive.name}: Cargo.toml lacks [package] name and version") from None
        validate_name("crates.io", name)
        validate_version(version)
        return Metadata(name, version)

    def staged_name(self, archive: Path, meta: Metadata) -> str:
        return staged_name(archive, (".crate",), f"{meta.name}-{meta.version}.crate")

    def find_archive(self, name: str, version: str | None, dirs: tuple[Path, ...]) -> Path | None:
        return self.highest_matching(name, version, dirs, "*.crate", semantic_version.Version)

    def _sandbox_bin(self) -> str:
        sysroot = host_sysroot()
        return "/usr/bin" if sysroot in (None, "/usr") else f"{SANDBOX_TOOLCHAIN}/bin"

    def ro_binds(self) -> tuple[tuple[str, str], ...]:
        sysroot = host_sysroot()
        if sysroot is None or sysroot == "/usr":
            return ()
        return ((sysroot, SANDBOX_TOOLCHAIN),)

    def env(self, layout: Layout, online: bool) -> dict[str, str]:
        env = {
            "PATH": f"{self._sandbox_bin()}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "CARGO_HOME": "~/.cargo",
            "CARGO_TERM_COLOR": "never",
            "CARGO_TERM_PROGRESS_WHEN": "never",
            "CARGO_INCREMENTAL": "0",
            "RUSTC": f"{self._sandbox_bin()}/rustc",
            # the install harness points crates-io at the registry service's sparse index
            "OSPTRACK_CRATES_INDEX": CRATES_INDEX_URL,
        }
        return env

    def command(self, phase: str, layout: Layout, online: bool) -> list[str] | None:
        h = layout.harness
        mode = "online" if online else "offline"
        if phase == "install":
            return install_harness_argv("cratesio_install.py", layout, online)
        if phase == "import":
            argv = ["cargo", "run", "--quiet", "--manifest-path", f"{STUB}/Cargo.toml"]
            return argv if online else [*argv, "--offline"]
        if phase == "execute":
            return ["python3", f"{h}/cratesio_execute.py", layout.name, layout.version, mode]
        return None

    def toolchain_rules(self) -> tuple[Rule, ...]:
        bin_dir = self._sandbox_bin()
        harness = Layout.harness
        python = ("/usr/bin/python3",)
        cargo = (f"{bin_dir}/cargo",)
        return (
            Rule("harness", python, Role.DRIVER, args=(f"{harness}/cratesio_install.py",)),
            Rule("harness", python, Role.DRIVER, args=(f"{harness}/cratesio_execute.py",)),
            Rule("cargo", cargo, Role.DRIVER, (ROOT, "harness")),
            Rule("rustc", (f"{bin_dir}/rustc", f"{bin_dir}/rustdoc"), Role.DRIVER, ("cargo",)),
            # rustc's linker call (cc -> collect2 -> ld.lld -> rust-lld). A build script's cc has
            # the build script above it. (A proc macro runs inside rustc: its own cc would pass.)
            Rule("linker", installed("/usr/bin/cc"), Role.HELPER, ("rustc",)),
            # The stub binary the import phase runs (the crate's code runs inside it), and the
            # execute harness starting an installed binary: what they do is kept.
            Rule("stub", (f"{STUB}/target/debug/osptrack-stub",), Role.HOST, ("cargo",)),
            Rule("executable", ("~/.osptrack-crates/installed/bin/",), Role.HOST, ("harness",)),
        )


def pack_crate(
    dest: Path, name: str, version: str, files: dict[str, bytes], cargo_toml: str | None = None
) -> Path:
    """A .crate (gzip tar with one `name-version/` folder), as `cargo package` lays it out."""
    top = f"{name}-{version}"
    manifest = cargo_toml or (f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel, data in sorted({"Cargo.toml": manifest.encode(), **files}.items()):
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    path = dest / f"{top}.crate"
    atomic_write_bytes(path, buf.getvalue())
    path.chmod(0o644)  # mkstemp's 0600 would hide it from the sandbox's host uid in a --deps-dir
    return path
