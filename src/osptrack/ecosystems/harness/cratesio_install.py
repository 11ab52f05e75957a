"""cargo build of a stub crate that depends on the crate under analysis (inside the sandbox).

Usage: cratesio_install.py offline|online NAME VERSION [ARCHIVE] [--deps DIR...]

cargo's config replaces crates.io with the sparse index of the fake network's registry service
($OSPTRACK_CRATES_INDEX), which serves the crate itself, the --deps-dir crates and the host's
cache (and, with --online, what osptrack fetched from crates.io on the host), so cargo resolves
and downloads them as from crates.io: the crate's build.rs and any proc-macros run exactly as
on a user's machine. The crate is also unpacked here, only to read its library name and macros.
The stub lives in /root/.osptrack-crates/stub; the import phase runs it (`cargo run`). A
proc-macro crate's macros run only when expanded, so each exported derive, function-like and
attribute macro is then expanded once in a second crate (`cargo check`).
"""

import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib

import _install_args  # sibling module: the harness folder is this script's sys.path[0]

ROOT = os.path.join(os.environ.get("HOME", "/root"), ".osptrack-crates")
UNPACKED = f"{ROOT}/unpacked"
STUB = f"{ROOT}/stub"
MACRO_USE = f"{ROOT}/macro-use"
CARGO_HOME = os.environ.get("CARGO_HOME", "/root/.cargo")


def unpack(crate):
    """Unpack one .crate (to read it, never built from here); return its directory."""
    with tarfile.open(crate, "r:gz") as tf:
        tops = {m.name.split("/", 1)[0] for m in tf.getmembers()}
        if len(tops) != 1:
            raise SystemExit(f"osptrack-install: {crate}: expected one top folder, found {sorted(tops)[:5]}")
        safe_extract(tf, UNPACKED)
    return os.path.join(UNPACKED, tops.pop())


def safe_extract(tf, dest):
    """Regular files and folders only, never outside `dest` (Debian's 3.11.2 has no tar filters)."""
    root = os.path.realpath(dest)
    for member in tf.getmembers():
        target = os.path.realpath(os.path.join(root, member.name))
        if not target.startswith(root + os.sep):
            continue
        if member.isdir():
            os.makedirs(target, exist_ok=True)
        elif member.isfile():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = tf.extractfile(member)
            with open(target, "wb") as out:
                out.write(src.read() if src else b"")
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)


def lib_name(folder, name):
    """The crate's library name as code writes it (hyphens become underscores), or None."""
    with open(os.path.join(folder, "Cargo.toml"), "rb") as fh:
        manifest = tomllib.load(fh)
    lib = manifest.get("lib") or {}
    if lib or os.path.exists(os.path.join(folder, "src", "lib.rs")):
        return str(lib.get("name") or name).replace("-", "_")
    return None


def proc_macros(folder):
    """(derives, function-like, attributes) a proc-macro crate exports, by their attributes."""
    with open(os.path.join(folder, "Cargo.toml"), "rb") as fh:
        lib = tomllib.load(fh).get("lib") or {}
    if not (lib.get("proc-macro") or lib.get("proc_macro")):
        return [], [], []
    text = ""
    for root, _, files in os.walk(os.path.join(folder, "src")):
        for f in sorted(files):
            if f.endswith(".rs"):
                with open(os.path.join(root, f), errors="replace") as fh:
                    text += fh.read() + "\n"
    fn = r"\s*(?:#\[[^\]]*\]\s*)*pub\s+fn\s+(\w+)"
    derives = re.findall(r"#\[proc_macro_derive\(\s*(\w+)", text)
    bangs = re.findall(r"#\[proc_macro\]" + fn, text)
    attrs = re.findall(r"#\[proc_macro_attribute\]" + fn, text)
    return sorted(set(derives)), sorted(set(bangs)), sorted(set(attrs))


def exercise_macros(name, version, lib, macros):
    """Expand every exported macro once in a separate crate, the way a user's code would.

    Macro bodies run only when expanded; the generated inputs may not suit them, so a
    failing build here is reported, not fatal.
    """
    derives, bangs, attrs = macros
    lines = ["#![allow(unused)]"]
    lines += [f"#[derive({lib}::{d})]\nstruct OsptrackDerive{i};" for i, d in enumerate(derives)]
    lines += [f"{lib}::{b}!();" for b in bangs]
    lines += [f"#[{lib}::{a}]\nfn osptrack_attr{i}() {{}}" for i, a in enumerate(attrs)]
    write(
        f"{MACRO_USE}/Cargo.toml",
        '[package]\nname = "osptrack-macro-use"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
        f"[dependencies]\n{json.dumps(name)} = {json.dumps('=' + version)}\n",
    )
    write(f"{MACRO_USE}/src/lib.rs", "\n".join(lines) + "\n")
    argv = ["cargo", "check", "--manifest-path", f"{MACRO_USE}/Cargo.toml"]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL)
    print(
        f"osptrack-install: expanded {len(lines) - 1} macros of {name} (cargo check exit {done.returncode})"
    )


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def main():
    _mode, _, name, version, archive, _deps = _install_args.parse()
    os.makedirs(UNPACKED, exist_ok=True)
    lib = name.replace("-", "_")
    crate_dir = None
    if archive:
        crate_dir = unpack(archive)
        lib = lib_name(crate_dir, name)
    # Online or not, cargo talks only to the registry service (osptrack fetches on the host).
    write(
        f"{CARGO_HOME}/config.toml",
        '[source.crates-io]\nreplace-with = "osptrack"\n\n'
        f"[source.osptrack]\nregistry = {json.dumps(os.environ['OSPTRACK_CRATES_INDEX'])}\n",
    )
    write(
        f"{STUB}/Cargo.toml",
        '[package]\nname = "osptrack-stub"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
        f"[dependencies]\n{json.dumps(name)} = {json.dumps('=' + version)}\n",
    )
    # `use x as _` links the crate into the stub, so its life-before-main code runs in `cargo run`.
    use = f"#[allow(unused_imports)]\nuse {lib} as _;\n" if lib else ""
    write(
        f"{STUB}/src/main.rs", f'{use}\nfn main() {{\n    println!("osptrack-import: {name} linked");\n}}\n'
    )
    argv = ["cargo", "build", "--manifest-path", f"{STUB}/Cargo.toml"]
    sys.stdout.flush()
    built = subprocess.run(argv, stdin=subprocess.DEVNULL)
    macros = proc_macros(crate_dir) if crate_dir else ([], [], [])
    if lib and any(macros):
        exercise_macros(name, version, lib, macros)
    return built.returncode


if __name__ == "__main__":
    sys.exit(main())
