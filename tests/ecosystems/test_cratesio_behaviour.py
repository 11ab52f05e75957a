"""crates.io in the sandbox: a build.rs, a life-before-main constructor in the library and a
binary each look up a name, connect and run a command, each in its own phase of result.json.
The crate name is hyphenated on purpose: package-analysis's crates.io import breaks on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders import analyze_all_phases, assert_phase_behaviour, require_toolchain
from osptrack.ecosystems import get
from osptrack.ecosystems.cratesio import pack_crate
from osptrack.errors import BadInput
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import PackageRef

PORT = 8080
NAME = "osptrack-crate-hook"


def rust_behaviour_fn(fn_name: str, host: str) -> str:
    """DNS lookup, TCP connect and exec, harmless: the fake network sinkholes the connect."""
    tag = host.split(".")[0]
    return f"""
fn {fn_name}() {{
    use std::io::Write;
    use std::net::ToSocketAddrs;
    match ("{host}", {PORT}).to_socket_addrs() {{
        Ok(mut addrs) => {{
            if let Some(addr) = addrs.next() {{
                if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)) {{
                    let _ = s.write_all(b"GET /{tag} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n");
                }}
            }}
        }}
        Err(e) => println!("osptrack-test: dns failed: {{e}}"),
    }}
    let _ = std::process::Command::new("sh").args(["-c", "echo {tag}-ran; id"]).status();
}}
"""


def build_crate(dest: Path) -> Path:
    lib = (
        rust_behaviour_fn("osptrack_behaviour", "crate-import.osptrack-test.example.com")
        + """
// Life before main, the way the `ctor` crate does it: runs when a program linking us starts.
#[used]
#[link_section = ".init_array"]
static OSPTRACK_INIT: extern "C" fn() = osptrack_init;
extern "C" fn osptrack_init() {
    osptrack_behaviour();
}

pub fn value() -> u32 {
    1
}
"""
    )
    files = {
        "build.rs": (
            rust_behaviour_fn("behaviour", "crate-install.osptrack-test.example.com")
            + "fn main() { behaviour(); }\n"
        ).encode(),
        "src/lib.rs": lib.encode(),
        "src/main.rs": (
            rust_behaviour_fn("behaviour", "crate-execute.osptrack-test.example.com")
            + 'fn main() { if std::env::args().any(|a| a == "--help") { behaviour(); } }\n'
        ).encode(),
    }
    toml = f'[package]\nname = "{NAME}"\nversion = "0.1.0"\nedition = "2021"\nbuild = "build.rs"\n'
    return pack_crate(dest, NAME, "0.1.0", files, toml)


def test_crate_metadata_and_lookup(tmp_path: Path) -> None:
    crate = build_crate(tmp_path)
    eco = get("crates.io")
    assert eco.read_metadata(crate).name == NAME
    assert eco.find_archive("osptrack_crate_hook", "0.1.0", (tmp_path,)) == crate  # - and _ are one name
    assert eco.find_archive(NAME, "9.9.9", (tmp_path,)) is None


def test_crate_without_manifest_is_bad_input(tmp_path: Path) -> None:
    junk = pack_crate(tmp_path, "x", "1.0.0", {})
    import tarfile

    bare = tmp_path / "bare-1.0.0.crate"
    with tarfile.open(junk) as src, tarfile.open(bare, "w:gz") as out:
        for m in src.getmembers():
            if not m.name.endswith("Cargo.toml"):
                out.addfile(m, src.extractfile(m))
        info = tarfile.TarInfo("bare-1.0.0/README")
        out.addfile(info)
    with pytest.raises(BadInput, match="no Cargo.toml"):
        get("crates.io").read_metadata(bare)


@pytest.fixture(scope="module")
def crate_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_toolchain("crates.io")
    base = tmp_path_factory.mktemp("crate")
    crate = build_crate(base)
    return analyze_all_phases("crates.io", crate, base / "run", 240)


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("phase", "host"),
    [
        ("install", "crate-install.osptrack-test.example.com"),
        ("import", "crate-import.osptrack-test.example.com"),
        ("execute", "crate-execute.osptrack-test.example.com"),
    ],
)
def test_each_phase_records_dns_connect_exec(crate_run: dict, phase: str, host: str) -> None:
    assert crate_run["Analysis"][phase]["Status"] == "completed"
    assert_phase_behaviour(crate_run, phase, host, PORT)


@pytest.mark.sandbox
def test_notable_keeps_the_hook_and_drops_toolchain_noise(crate_run: dict) -> None:
    run_dir = Path(crate_run["_run_dir"])
    commands = json.loads((run_dir / "run.json").read_text())["notable"]["commands"]
    assert any("crate-install-ran" in c for c in commands), commands
    assert not any("rust-lld" in c for c in commands), commands


def build_proc_macro_crate(dest: Path) -> Path:
    """A proc-macro crate whose derive does the behaviour when a user's code expands it."""
    lib = (
        "extern crate proc_macro;\nuse proc_macro::TokenStream;\n"
        + rust_behaviour_fn("behaviour", "crate-macro.osptrack-test.example.com")
        + "\n#[proc_macro_derive(OsptrackHook)]\npub fn derive(_input: TokenStream) -> TokenStream {\n"
        "    behaviour();\n    TokenStream::new()\n}\n"
    )
    toml = '[package]\nname = "osptrack-macro-hook"\nversion = "0.2.0"\nedition = "2021"\n\n[lib]\nproc-macro = true\n'
    return pack_crate(dest, "osptrack-macro-hook", "0.2.0", {"src/lib.rs": lib.encode()}, toml)


@pytest.mark.sandbox
def test_proc_macros_are_expanded_at_install(tmp_path: Path) -> None:
    require_toolchain("crates.io")
    crate = build_proc_macro_crate(tmp_path)
    ref = PackageRef("crates.io", "osptrack-macro-hook", None, crate)
    outcome = analyze(ref, AnalyzeOptions(phases=("install",), timeout_s=240), tmp_path / "run")
    assert outcome.statuses == {"install": "completed"}
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert_phase_behaviour(result, "install", "crate-macro.osptrack-test.example.com", PORT)
