"""Both tracer backends on the same built packages, in the real sandbox: the same events and records.

One persona for both runs (the home path and user name are otherwise random); names that pip,
npm and tempfile pick at random are masked. What differs by design is in docs/formats.md
("Tracer backends"); nothing of it shows in these packages' events.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from builders import require_toolchain, suspicious_npm, suspicious_sdist
from osptrack.trace.events import Event, read_events_jsonl
from osptrack.trace.tracers import get

pytestmark = pytest.mark.skipif(
    not get("ebpf").available()[0], reason=f"eBPF tracer unavailable: {get('ebpf').available()[1]}"
)

# tempfile's 8 characters, pip's pip-*-XXXXXXXX, Python's .pyc.<id>, npm's cache hashes, tmp
# folders, uuids and log times
_RANDOM = re.compile(
    r"(?<=[-/.])[a-z0-9_]{8}(?=/|$)|[a-z0-9_]{8}\.tmp$|tmp[a-z0-9_]{8}|\.pyc\.\d+|(?<=/)[0-9a-f]{16,}|-\d{10,}"
    r"|(?<=/tmp/)[A-Za-z0-9]{6}(?=/|$)|\d{4}-\d\d-\d\dT[\d_]+Z|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


_TIMING_READS = frozenset({"/proc/stat", "/sys/devices/system/cpu/online"})


def _mask(text: str | None) -> str | None:
    return _RANDOM.sub("*", text) if text else text


def _key(e: Event) -> tuple[object, ...]:
    return (
        e.phase, e.kind, e.op, e.syscall, _mask(e.path), _mask(e.path2), e.errno,
        tuple(_mask(a) for a in e.argv or ()), e.family, e.address, e.port if e.op != "listen" else None,
        e.exit_code, e.signal, e.ftype, e.read, e.probe, e.exe, e.comm,
    )  # fmt: skip


def _analyze(ecosystem: str, archive: Path, out: Path, tracer: str, persona: object, monkeypatch) -> dict:
    from osptrack import run
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    monkeypatch.setattr(run, "choose_persona", lambda: persona)
    analyze(
        parse_target(ecosystem, str(archive)),
        AnalyzeOptions(phases=("install", "import"), timeout_s=120, tracer=tracer),
        out,
    )
    return json.loads((out / "run.json").read_text())


@pytest.mark.parametrize("ecosystem", ["pypi", "npm"])
def test_both_backends_see_the_same_package(ecosystem: str, tmp_path: Path, monkeypatch):
    from osptrack.sandbox.persona import choose_persona

    require_toolchain(ecosystem)
    archive = (suspicious_sdist if ecosystem == "pypi" else suspicious_npm)(tmp_path)
    persona = choose_persona()
    runs = {}
    for tracer in ("ebpf", "strace"):
        out = tmp_path / f"run-{tracer}"
        info = _analyze(ecosystem, archive, out, tracer, persona, monkeypatch)
        for phase in ("install", "import"):
            assert info["phases"][phase]["tracer"] == tracer
            assert info["phases"][phase]["trace_valid"] and info["phases"][phase]["trace_lost_events"] == 0
        runs[tracer] = out
    events = {t: read_events_jsonl(out / "events.jsonl") for t, out in runs.items()}
    # Sets, not counts: how often node polls /proc/stat depends on timing, not on the tracer. A
    # call a signal interrupted (ERESTART*, then restarted) depends on timing too.
    # And libuv's CPU count (os.cpus() in a worker thread) is read in some runs and not in others,
    # under either backend.
    keys = {
        t: {_key(e) for e in ev if not (e.errno or "").startswith("ERESTART") and e.path not in _TIMING_READS}
        for t, ev in events.items()
    }
    only_ebpf, only_strace = keys["ebpf"] - keys["strace"], keys["strace"] - keys["ebpf"]
    assert not only_ebpf and not only_strace, (
        sorted(map(str, only_ebpf))[:8],
        sorted(map(str, only_strace))[:8],
    )
    assert len(events["ebpf"]) > 200

    # The records downstream: the same commands, sockets and sensitive reads in result.json.
    results = {t: json.loads((out / "result.json").read_text())["Analysis"] for t, out in runs.items()}
    for phase in ("install", "import"):
        view = {
            t: (
                sorted(" ".join(_mask(a) or "" for a in c["Command"]) for c in r[phase]["Commands"] or []),
                sorted((s["Address"], s["Port"]) for s in r[phase]["Sockets"] or []),
                # (the timing-dependent reads are left out here too, as from the events above)
                sorted(
                    {
                        _mask(f["Path"]) or ""
                        for f in r[phase]["Files"] or []
                        if f["Path"] not in _TIMING_READS
                    }
                ),
            )
            for t, r in results.items()
        }
        assert view["ebpf"] == view["strace"], phase
    install = results["ebpf"]["install"]
    assert any(".ssh/id_rsa" in (f["Path"] or "") for f in install["Files"] or [])
    assert any(c["Command"][:2] == ["sh", "-c"] for c in install["Commands"] or [])
