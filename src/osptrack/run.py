"""Orchestrates one analysis: resolve archive -> phases in the sandbox -> result folder.

The run folder is assembled in a temp folder beside `out` and renamed into place at the end,
with run.json written last, so a folder that exists is a complete one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osptrack import __version__
from osptrack import ecosystems as eco_registry
from osptrack.ecosystems.base import Ecosystem, Layout, Metadata, expand_home
from osptrack.errors import BadInput
from osptrack.outputs import check_output_dir, replace_dir
from osptrack.phase_sends import PhaseSends
from osptrack.registry import REGISTRY_ADDRESS, REGISTRY_HOST
from osptrack.registry.backends import seed_folders as backend_folders
from osptrack.registry.online import cached_version, fetch_target, installs_by_name, registry_served
from osptrack.registry.service import RegistryConfig, RegistryService
from osptrack.registry.upstream import UpstreamError
from osptrack.result_thread import ResultThread
from osptrack.sandbox import locales, native, persona_node, trust, wakeup
from osptrack.sandbox.baits import Baits, make_baits
from osptrack.sandbox.bwrap import HOST_GID, HOST_UID, SECCOMP_DENY, SandboxSpec
from osptrack.sandbox.fakenet import MAX_CAPTURE, FakeNetwork
from osptrack.sandbox.fakenet.responders.registry import registry_routes
from osptrack.sandbox.limits import Limits
from osptrack.sandbox.netns import Eth0, sweep_stale
from osptrack.sandbox.persona import Persona, choose_persona, overlay_files, persona_binds, seed_home
from osptrack.sandbox.preflight import check_sandbox
from osptrack.sandbox.runner import PhaseOutcome, Workspace, run_phase, trace_log
from osptrack.target import PackageRef
from osptrack.trace.common import ParseStats
from osptrack.trace.tracers import Tracer, choose, default_name

if TYPE_CHECKING:  # loaded once the first phase runs (DEFERRED): see _LazyDigest
    from collections.abc import Iterable

    from osptrack.digest import PhaseDigest, RunDigest
    from osptrack.trace.events import Event, EventLog
    from osptrack.trace.roles import VerdictTrail

# What a run needs only once its first phase has started: the digest of the trace (msgspec, the
# events, the roles' classifier, the summary), the verdict rules, the run folder's writers. A
# cold `osptrack analyze` imports them in the first phase's digest thread while the sandbox runs
# (the main thread waits on it then), not before the first phase (docs/performance.md, "What a
# cold analyze imports before its first phase"). A process that forks or serves runs (the batch
# zygote, a resident server) imports them up front with preload().
DEFERRED = (
    "osptrack.digest",
    "osptrack.summary",
    "osptrack.phase_notes",
    "osptrack.jsonio",
    "osptrack.trace.events",
    "osptrack.verdict",
    "osptrack.verdict.engine",
)


def _import_deferred(extra: Sequence[str] = ()) -> None:
    """DEFERRED, the verdict's parsed rules and the caller's `extra` modules, for the end of the
    run; an error here is the run's to meet and report where it uses them (a rule file's error
    goes to run.json)."""
    with contextlib.suppress(Exception):
        for name in DEFERRED:
            importlib.import_module(name)
        from osptrack.verdict.engine import load_rules

        load_rules()
    for name in extra:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


# What a run imports on its own path only when it comes to need it: each ecosystem's and tracer
# backend's module (a run loads its own), the network's responders and their parsers (h11,
# dnslib, wsproto: with the first connection or query), the exfiltration scanner and its
# decoders (with the first record), the registry's version ranges and metadata parsers (with the
# first request). A direct run is better off without the ones it never needs; a process that
# forks or serves runs imports them once, instead of each run paying them again, during a phase,
# beside the package (about 125 ms of CPU for a run whose installer uses the registry service:
# docs/performance.md, "The fixed cost of a run through the CLI").
RUN_LAZY = (
    "osptrack.trace.ebpf.log",
    "osptrack.trace.tracers.ebpf",
    "osptrack.trace.tracers.strace",
    *(module for module, _ in eco_registry.MODULES.values()),
    "osptrack.registry.npm",
    "osptrack.registry.npm_code",
    "osptrack.registry.cratesio",
    "osptrack.registry.packagist",
    "osptrack.registry.rubygems",
    "osptrack.sandbox.exfil",
    *(f"osptrack.sandbox.exfil.decoders.{m}" for m in ("archives", "basen", "compression", "http")),
    *(f"osptrack.sandbox.exfil.decoders.{m}" for m in ("jsonesc", "multipart", "urlenc")),
    "osptrack.sandbox.fakenet.responders.sniff",
    "osptrack.sandbox.fakenet.responders.doh",
    "dnslib",
    "h11",
    "email.parser",
    "semantic_version",
    "brotli",
    "encodings.cp437",  # zipfile, for a member name not flagged UTF-8 (pip reading a wheel)
)


def preload() -> None:
    """Import what `analyze` otherwise loads during its first phase (DEFERRED) or when it comes to
    need it (RUN_LAZY), and parse the verdict's rules: for a process that runs many analyses
    (forks them, or serves them). The rules are package data, like the code: the analyze server
    re-checks both before every run (osptrack.server.stamp) and a batch's zygote lives for one
    batch. A rule file that does not parse is left for the run to report, as a direct run does."""
    for name in (*DEFERRED, *RUN_LAZY):
        importlib.import_module(name)
    from osptrack.verdict.engine import load_rules

    with contextlib.suppress(Exception):
        load_rules()


PHASES = ("install", "import", "execute")
DEFAULT_PHASES = ("install", "import")
HARNESS_DIR = Path(__file__).parent / "ecosystems" / "harness"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


@dataclass(frozen=True)
class AnalyzeOptions:
    phases: tuple[str, ...] = DEFAULT_PHASES
    timeout_s: float = 300.0
    deps_dirs: tuple[Path, ...] = ()
    online: bool = False
    limits: Limits = field(default_factory=Limits)
    capture_bytes: int = MAX_CAPTURE  # bytes of each network flow kept (request heads + bodies)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    # osptrack.trace.tracers: auto (eBPF where possible), ebpf, strace; OSPTRACK_TRACER sets the
    # default (CI or a machine that must compare both)
    tracer: str = field(default_factory=default_name)
    # digest each phase's trace while the phase runs (osptrack.trace.follow); False reads it after
    # the phase, as before (the same records: tests/core/test_follow.py compares both)
    follow_trace: bool = True


@dataclass(frozen=True)
class RunOutcome:
    """What a caller (CLI, batch) needs without re-reading the run folder."""

    ref: PackageRef  # name and version filled in from the archive's metadata
    out: Path
    statuses: dict[str, str] = field(default_factory=dict)  # phase -> Status
    wall_s: float = 0.0
    notable: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # phase -> kind -> records
    findings: dict[str, str] = field(default_factory=dict)  # phase -> one line of what was notable
    # phase -> last lines of stderr, for each phase that did not complete (why it failed)
    stderr_tails: dict[str, list[str]] = field(default_factory=dict)
    verdict: dict[str, Any] | None = None  # run.json's `verdict` (None if judging failed)
    phase_notes: dict[str, str] = field(default_factory=dict)  # phase -> why the package's code did not run


STDERR_TAIL_LINES = 10


def stderr_tail(stderr: bytes, lines: int = STDERR_TAIL_LINES) -> list[str]:
    """The last non-blank lines of a phase's stderr, decoded leniently, without control characters."""
    text = stderr.decode("utf-8", errors="replace")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return ["".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in line) for line in kept]


def resolve(ref: PackageRef, options: AnalyzeOptions) -> tuple[Ecosystem, PackageRef]:
    """Check the toolchain and fill in name, version and archive, reading metadata only."""
    eco = eco_registry.get(ref.ecosystem)
    unknown = [p for p in options.phases if p not in PHASES]
    if unknown or not options.phases:
        raise BadInput(
            f"unknown phase {', '.join(unknown) or '(none)'}; expected some of {', '.join(PHASES)}"
        )
    unsupported = [p for p in options.phases if p not in eco.phases]
    if unsupported:
        raise BadInput(f"{eco.name} has no {', '.join(unsupported)} phase")
    for folder in options.deps_dirs:
        if not folder.is_dir():
            raise BadInput(f"--deps-dir {folder} is not a folder")
    check_sandbox()
    eco.check_toolchain()
    archive = ref.archive
    if archive is None:
        archive = eco.find_archive(ref.name, ref.version, options.deps_dirs)
    if archive is None and installs_by_name(eco.name):
        # pip or npm installs NAME==VERSION from the registry service: the registry (online) or
        # the cache (offline) must have it; an unknown name is bad input, before anything is written.
        return eco, replace(ref, version=_registry_version(eco, ref, options))
    if archive is None and options.online:
        archive = fetch_target(eco.name, ref.name, ref.version, options.registry)
    if archive is None:
        raise BadInput(
            f"{ref.name}{'==' + ref.version if ref.version else ''} not found in --deps-dir; "
            "give a local archive, a --deps-dir holding it, or --online"
        )
    if archive is not None:
        meta = eco.read_metadata(archive)
        if ref.version and ref.archive is not None and meta.version != ref.version:
            raise BadInput(f"--version {ref.version} does not match the archive's {meta.version}")
        ref = replace(ref, name=meta.name, version=meta.version, archive=archive)
    return eco, ref


def _registry_version(eco: Ecosystem, ref: PackageRef, options: AnalyzeOptions) -> str:
    if options.online:
        try:
            return options.registry.upstream.resolve_target(eco.name, ref.name, ref.version)
        except UpstreamError as exc:
            raise BadInput(str(exc)) from None
    found = cached_version(eco.name, ref.name, ref.version, options.registry)
    if found is None:
        raise BadInput(
            f"{ref.name}{'==' + ref.version if ref.version else ''} not found in --deps-dir or the registry cache; "
            "give a local archive, a --deps-dir holding it, or --online"
        )
    return found


def analyze(
    ref: PackageRef, options: AnalyzeOptions, out: Path | None = None, *, imports: Sequence[str] = ()
) -> RunOutcome:
    """Analyse one package; write the complete run folder atomically to `out`.

    `out` must be missing, empty or an earlier run folder (osptrack.outputs): checked before any
    work, and again just before the new run replaces it. `imports`: modules the caller uses once
    the run is over (the CLI's table), imported while the first phase runs (see DEFERRED).
    """
    if out is not None:
        check_output_dir(out, "run")
    check_sandbox()  # a machine that cannot run the sandbox says so before a namespace is made
    with wakeup.held() as wake:  # idle CPUs poll while the run's processes wake one another
        return _analyze_held(ref, options, out, tuple(imports), wake)


def _analyze_held(
    ref: PackageRef, options: AnalyzeOptions, out: Path | None, imports: tuple[str, ...], wake: str
) -> RunOutcome:
    early = _Early.begin(options, wake)
    try:
        try:
            tracer = choose(options.tracer).tracer
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        eco, ref = resolve(ref, options)
        if out is None:
            out = Path("osptrack-runs") / ref.slug
            check_output_dir(out, "run")
        staging, made_parent = _staging_dir(out)
    except BaseException:
        early.network.__exit__()  # bad input: the namespace goes again, nothing was written
        raise
    try:
        return _analyze(eco, ref, options, out, staging, tracer, early, imports)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made_parent:
            with contextlib.suppress(OSError):
                out.parent.rmdir()
        raise


@dataclass(frozen=True)
class _Early:
    """What a run starts before it resolves its target: the persona, the honeytokens and the fake
    network, whose namespace (ip, nft: waiting on processes) is made in a thread from here, so
    that choosing the tracer and resolving the archive (5-10 ms) overlap it too; the main thread
    used to wait ~10 ms for it before the first phase (benchmarks/run_timeline.py). The registry
    service's routes are added once the target is known (FakeNetwork.add_routes), before any
    phase runs."""

    t0: float
    run_id: str
    persona: Persona
    baits: Baits
    net: FakeNetwork
    network: _Starting
    wake_latency: str  # osptrack.sandbox.wakeup's state, for run.json
    locale_view: ResultThread[locales.LocaleView]  # the persona's locales; built once per host (seconds)

    @classmethod
    def begin(cls, options: AnalyzeOptions, wake_latency: str) -> _Early:
        t0 = time.monotonic()
        run_id = uuid.uuid4().hex[:12]
        persona = choose_persona()
        baits = make_baits(persona.home)
        sweep_stale()  # namespaces of killed runs (5 ms; live runs are never touched)
        net = FakeNetwork(
            run_id=run_id,
            static_names={REGISTRY_HOST: REGISTRY_ADDRESS[0]},
            tokens=baits.values(),
            capture_bytes=options.capture_bytes,
            eth0=Eth0(persona.mac, persona.address, persona.gateway),
        )
        network = _Starting(net)
        network.begin()
        names = locales.named(persona.env())  # the locales its environment names exist inside
        view = ResultThread(lambda: locales.view(names), "osptrack-locales")
        return cls(t0, run_id, persona, baits, net, network, wake_latency, view)


def _analyze(
    eco: Ecosystem,
    ref: PackageRef,
    options: AnalyzeOptions,
    out: Path,
    staging: Path,
    tracer: Tracer,
    early: _Early,
    imports: tuple[str, ...] = (),
) -> RunOutcome:
    """The run, assembled in `staging` (beside `out`) and renamed into place at the end.

    Events stream from the parser into staging/events.jsonl and every consumer (osptrack.digest),
    so memory does not grow with the trace; the verdict reads events.jsonl back."""
    t0, run_id, persona, baits, net, network = (
        early.t0, early.run_id, early.persona, early.baits, early.net, early.network
    )  # fmt: skip
    limits = replace(options.limits, timeout_s=options.timeout_s)
    phases: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    ends: dict[str, tuple[PhaseDigest, PhaseOutcome]] = {}
    tails: dict[str, list[str]] = {}
    with contextlib.ExitStack() as stack:
        # The network's namespace is being made in a thread (_Early) while this one starts the
        # registry service, mounts the workspace, stages the input, seeds the home and builds
        # the trust stores, none of which needs the network; joined before the first phase.
        # Closed in the same order as before (first), and at once if the run fails before it is
        # entered.
        stack.callback(network.__exit__)
        digests = _LazyDigest(imports)
        stack.callback(digests.close)  # a failed run's folder is removed; its file must be closed
        registry = _registry_service(eco, options, ref)
        if registry is not None:
            net.add_routes(registry_routes(registry.handle, *REGISTRY_ADDRESS))
            stack.enter_context(registry)  # its fetch threads are this (host) thread's
        workspace = Workspace(limits)  # its folder is removed in a thread once the phases are done
        ws = stack.enter_context(workspace)
        stack.enter_context(network)
        digests.define(eco, baits.paths, net.marker, staging / "events.jsonl")
        layout, binds = _stage_input(ws, eco, ref, options, persona)
        init = _stage_init(ws)
        seed_home(persona, ws.home, HOST_UID, HOST_GID)
        baits.plant(ws.home, HOST_UID, HOST_GID)
        persona_node.seed_home(ws.home, persona.home, HOST_UID, HOST_GID)  # after ~/.npmrc's bait
        prepare = getattr(eco, "prepare_home", None)
        if prepare is not None:
            prepare(ws.home, HOST_UID, HOST_GID)
        ro_binds = (*binds, *eco.ro_binds(), *persona_binds())  # the persona's site-packages' certifi too
        stores = trust.build(net.ca.cert_pem, ws.root / "trust", ro_binds, ws.home) if net.ca else None
        network.wait()
        etc_files = persona.etc_files(net.resolver_address)  # one machine-id for the run's phases
        locale_view = early.locale_view.join()
        for phase in options.phases:
            net.set_phase(phase)
            if registry is not None:
                registry.set_phase(phase)
            # The sandbox never reaches a real registry: what --online fetches, osptrack fetched.
            command = eco.command(phase, layout, False)
            if command is None:
                continue
            probes = _probes_needed(eco, phase, layout, registry, ws.input)
            spec = SandboxSpec(
                home=ws.home,
                input_dir=ws.input,
                etc_files=etc_files,
                env={
                    **_sandbox_env(eco, layout, baits, persona),
                    **(stores.env if stores else {}),
                },
                ro_binds=(
                    *ro_binds,
                    *persona_node.binds(persona.home),
                    *(stores.binds if stores else ()),
                    *locale_view.binds,  # the host's locales and the persona's, one open per process
                ),
                chdir=expand_home(getattr(eco, "chdir", lambda: "~")(), persona.home),
                hostname=persona.hostname,
                tmp_bytes=limits.tmp_bytes,
                home_path=persona.home,
                uid=persona.uid,
                gid=persona.gid,
                overlay=overlay_files(persona),
                init=init,
            )
            command = [expand_home(a, persona.home) for a in command]
            trace = functools.partial(tracer.command, probes=probes)
            stats = tracer.new_stats()
            sends = PhaseSends(functools.partial(_sent_so_far, net, phase))
            done = threading.Event()  # set by run_phase once the tracer has exited
            followed = None
            if options.follow_trace:
                log = trace_log(ws, phase)
                reader = functools.partial(tracer.follow, log, phase, stats, done)
                followed = _Followed(digests, phase, reader, sends, log, done)
            try:
                outcome = run_phase(
                    phase,
                    spec,
                    ws,
                    command,
                    trace,
                    limits,
                    net.enter_netns,
                    run_id,
                    done,
                    net.netns_fd,
                    launch_env=getattr(tracer, "launch_env", None),  # strace's TZ (trace/strace.py)
                )
            except BaseException:
                sends.finish(None)
                if followed is not None:
                    with contextlib.suppress(BaseException):
                        followed.join()  # ends at the log's end: run_phase has set `done`
                raise
            # Where datagrams went this phase: UDP flows, and DNS queries (answered, not flows).
            sent = _phase_records(net, phase)
            udp_sent = _udp_sent(sent)
            if followed is not None:
                sends.finish(udp_sent)
                ph = followed.join()
            else:
                ph = digests.get().phase(phase, tracer.parse(outcome.trace_log, phase, stats=stats), udp_sent)
            status = _status(outcome)
            dns = [r for r in sent if r.get("kind") == "dns"]
            results[phase] = ph.aggregate.record(
                outcome.stdout,
                outcome.stderr,
                status,
                dns,
                ignore_sockets=_infrastructure(net),
                ip_names={a: net.hostnames_for(a) for a in ph.addresses},
            )
            phases[phase] = _phase_info(outcome, status, ph.events, stats, tracer)
            phases[phase]["probes_traced"] = probes
            if not probes and ph.package_execs:
                # judged unable to run package code, yet some ran (a wheel's metadata can name an
                # sdist by direct URL, which pip builds even then): say what ran unprobed
                phases[phase]["probes_missed_by"] = ph.package_execs
            phases[phase]["lookup_probes"] = ph.lookup.sockets()
            ends[phase] = (ph, outcome)
            if status != "completed":
                tails[phase] = stderr_tail(outcome.stderr)
            if net.ca is not None:
                trust.append_to_home_bundles(net.ca.cert_pem, ws.home)  # certifi the phase installed
            missing = registry.missing(phase) if registry is not None else []
            from osptrack import phase_notes

            note = phase_notes.note(eco.name, status, outcome.stderr, outcome.stdout, missing)
            if note:
                phases[phase]["phase_note"] = note
        records = net.records()
        exfil = net.exfiltration()  # every captured byte of each flow, then the DNS queries together
        net_health = net.health()
    from osptrack import summary
    from osptrack.trace.events import EventLog

    digest = digests.get()  # made already, unless no phase ran
    spool = digest.spool
    events_path = spool.close()  # in time order: evidence refs are its line numbers
    events = digest.summary
    bait_reads = events.bait_reads()
    for phase, (ph, outcome) in ends.items():
        limit_hit = outcome.timed_out or outcome.trace_capped
        phases[phase]["alive_at_end"] = ph.alive.alive(outcome.ended_at, limit_hit, outcome.alive_at_end)
    run_info = {
        "tool": {"name": "osptrack", "version": __version__},
        "package": _package_info(ref),
        "sandbox": _sandbox_info(limits, options.online, early.wake_latency, locale_view.locales),
        "persona": persona.as_dict(),
        "registry": registry.report() if registry is not None else None,
        "honeytokens": [t.as_dict() for t in baits.tokens],
        "phases": phases,
        "exfiltration": exfil,
        "network": net_health,
        **digest.second_stage_info(),
        "bait_reads": bait_reads,
        "probes": events.probes(),
        "trace": {
            "valid": all(p["trace_valid"] for p in phases.values()),
            "events": digest.events,
            "dropped_lines": sum(p["trace_dropped_lines"] for p in phases.values()),
            "truncated": any(p["trace_capped"] for p in phases.values()),
        },
        "timings": {"total_s": round(time.monotonic() - t0, 3)},
    }
    notable = events.notable(eco, results, records, bait_reads, exfil)
    notable["alive_at_end"] = summary.alive_lines({p: i.get("alive_at_end", []) for p, i in phases.items()})
    run_info["notable"] = notable
    findings = events.phase_findings(eco, results, records, notable)
    for phase, line in findings.items():
        phases[phase]["findings"] = line
    result = {
        "Package": {"Ecosystem": eco.name, "Name": ref.name, "Version": ref.version},
        "CreatedTimestamp": int(time.time()),
        "Analysis": results,
    }
    # the run's pass saw the events in events.jsonl's order unless they needed sorting
    argv = events.argv.argv if spool.ordered else None
    trail = events.trail if spool.ordered else None
    if trail is not None and len(trail) != spool.count:
        trail = None  # not one verdict per line: the verdict classifies again
    verdict = _judge(run_info, EventLog(events_path), records, result, argv, trail)
    if verdict is not None:
        run_info["verdict"] = verdict
    _write_run_folder(out, staging, result, records, run_info)
    workspace.wait_removed()  # nothing of the run is left behind when analyze returns
    statuses = {p: r["Status"] for p, r in results.items()}
    counts = {
        p: {k: len(r.get(k) or []) for k in ("Files", "Sockets", "Commands", "DNS")}
        for p, r in results.items()
    }
    return RunOutcome(
        ref=ref,
        out=out,
        statuses=statuses,
        wall_s=time.monotonic() - t0,
        notable=notable,
        counts=counts,
        findings=findings,
        stderr_tails=tails,
        verdict=verdict,
        phase_notes={p: info["phase_note"] for p, info in phases.items() if info.get("phase_note")},
    )


class _Starting:
    """`net.start()` in a thread from `begin()` (or `__enter__`); `wait()` joins it and raises what
    it raised; `__exit__` joins it, then closes the network (FakeNetwork.close is safe twice and
    after a failed start)."""

    def __init__(self, net: FakeNetwork) -> None:
        self._net = net
        self._thread: ResultThread[None] | None = None

    def begin(self) -> None:
        if self._thread is None:
            self._thread = ResultThread(self._net.start, "osptrack-fakenet-start")

    def __enter__(self) -> _Starting:
        self.begin()
        return self

    def wait(self) -> None:
        assert self._thread is not None, "begin() first"
        self._thread.join()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._thread.finish()
        self._net.close()


class _LazyDigest:
    """The run's RunDigest (and its EventSpool, events.jsonl), made by the first thread that needs
    it: the first phase's digest thread (_Followed), once the phase is spawned, so osptrack.digest
    and msgspec load while the sandbox runs instead of before it starts (DEFERRED)."""

    def __init__(self, imports: tuple[str, ...] = ()) -> None:
        self._imports = imports  # the caller's, for after the run (analyze's `imports`)
        self._lock = threading.Lock()
        self._make: Callable[[], RunDigest] | None = None
        self._digest: RunDigest | None = None

    def define(self, eco: Ecosystem, bait_paths: Sequence[str], marker: str, events_path: Path) -> None:
        def make() -> RunDigest:
            from osptrack.digest import EventSpool, RunDigest

            digest = RunDigest(eco, bait_paths, marker, EventSpool(events_path))
            # the rest of DEFERRED (the verdict's rules, the writers) beside the digest's thread
            threading.Thread(
                target=_import_deferred, args=(self._imports,), name="osptrack-imports", daemon=True
            ).start()
            return digest

        self._make = make

    def get(self) -> RunDigest:
        with self._lock:
            if self._digest is None:
                assert self._make is not None, "define() first"
                self._digest = self._make()
            return self._digest

    def close(self) -> None:
        """Close events.jsonl if it was opened (a failed run's folder is removed)."""
        with self._lock:
            if self._digest is not None:
                self._digest.spool.close()


class _Followed(ResultThread["PhaseDigest"]):
    """RunDigest.follow (digest.FollowedPhase) for one phase, with the digest's imports and the
    run's digest made in its thread, once the tracer has created the phase's log: the phase is
    spawned by then, and the main thread waits on it (the imports take no GIL from the spawn)."""

    def __init__(
        self,
        digests: _LazyDigest,
        phase: str,
        events: Callable[[], Iterable[Event]],
        sends: PhaseSends,
        log: Path,
        done: threading.Event,
    ) -> None:
        def digest() -> PhaseDigest:
            while not os.path.exists(log) and not done.wait(SPAWN_POLL_S):
                pass
            return digests.get().phase(phase, events(), sends)

        super().__init__(digest, f"osptrack-digest-{phase}")


SPAWN_POLL_S = 0.02  # how often the digest thread looks for the phase's trace log (a wake-up is CPU too)


def _phase_records(net: FakeNetwork, phase: str, settle: bool = True) -> list[dict[str, Any]]:
    return [r for r in net.records(settle) if r.get("phase") == phase]


def _sent_so_far(net: FakeNetwork, phase: str) -> set[tuple[Any, Any]]:
    """`_udp_sent` while the phase may still run (what the fake network has seen yet)."""
    return _udp_sent(_phase_records(net, phase, settle=False))


def _udp_sent(sent: list[dict[str, Any]]) -> set[tuple[Any, Any]]:
    """Where the phase's datagrams went: UDP flows, and DNS queries (answered, not flows)."""
    udp_sent = {(r.get("dst"), r.get("dst_port")) for r in sent if r.get("kind") == "udp"}
    return udp_sent | {(r.get("server"), r.get("server_port")) for r in sent if r.get("kind") == "dns"}


def _registry_service(eco: Ecosystem, options: AnalyzeOptions, ref: PackageRef) -> RegistryService | None:
    if not registry_served(eco.name):
        return None
    config = options.registry
    if eco.name == "pypi" and not config.seed_folders:
        config = replace(config, seed_folders=backend_folders())
    # cargo takes the crate itself from its registry too (a path dependency would change how
    # cargo builds it: lints uncapped, `#![deny(warnings)]` failing), so the service serves it.
    # gem asks the source for the gem it installs from a file too: not a miss.
    files = (ref.archive,) if eco.name in ("crates.io", "rubygems") and ref.archive is not None else ()
    return RegistryService(eco.name, options.deps_dirs, options.online, config, files)


def _judge(
    run_info: dict[str, Any],
    events: Sequence[Event] | EventLog,
    records: list[dict[str, Any]],
    result: dict[str, Any],
    argv: dict[int, list[str]] | None = None,
    trail: VerdictTrail | None = None,
) -> dict[str, Any] | None:
    """The verdict for run.json. A rule bug must not cost the run: it is recorded and the run kept
    (`osptrack report` judges again from the folder)."""
    from osptrack.verdict import RunData, judge  # loaded during the first phase (DEFERRED)

    try:
        run = RunData(
            run_info=run_info, events=events, records=records, result=result, argv=argv, trail=trail
        )
        return judge(run).to_dict()
    except Exception as exc:  # any rule error; the run folder is the valuable part
        run_info["verdict_error"] = f"{type(exc).__name__}: {exc}"
        return None


def _stage_input(
    ws: Workspace, eco: Ecosystem, ref: PackageRef, options: AnalyzeOptions, persona: Persona
) -> tuple[Layout, tuple[tuple[str, str], ...]]:
    """Put the archive, the dependency archives and the harness into the read-only /input.

    Dependencies are staged file by file rather than bound as folders: the sandbox runs as
    `nobody`, which may not be able to enter the user's folder (pytest's tmp_path is 0700), and
    only archives of the ecosystem belong in the sandbox's view, not whatever else the folder holds.
    """
    (ws.input / "pkg").mkdir(mode=0o755)
    archive = None
    if ref.archive is not None:
        # a misnamed archive (a wheel saved as .zip) gets the name its toolchain needs
        pkg_file = eco.staged_name(ref.archive, Metadata(ref.name, ref.version or ""))
        _stage_file(ref.archive, ws.input / "pkg" / pkg_file)
        archive = f"/input/pkg/{pkg_file}"
    _stage_tree(HARNESS_DIR, ws.input / "harness")
    deps: list[str] = []
    # pip and npm get their dependencies from the registry service, which reads the folders on
    # the host; the other ecosystems' installers read them from /input/deps.
    staged_dirs = () if registry_served(eco.name) else options.deps_dirs
    for i, folder in enumerate(staged_dirs):
        staged = ws.input / "deps" / str(i)
        staged.mkdir(parents=True, mode=0o755)
        for path in sorted(folder.iterdir()):
            if path.is_symlink() or not path.is_file() or not path.name.endswith(eco.suffixes):
                continue
            if ref.archive is not None and path.resolve() == ref.archive.resolve():
                continue  # the package itself is not its own dependency
            _stage_file(path, staged / path.name)
        deps.append(f"/input/deps/{i}")
    layout = Layout(
        name=ref.name, version=ref.version or "", archive=archive, deps=tuple(deps), home=persona.home
    )
    return layout, ()


def _stage_init(ws: Workspace) -> str:
    """The sandbox's pid 1 beside the harness: the built binary where it is (a hard link), else
    the harness's Python init, already staged."""
    binary = native.init_path()
    if binary is None:
        return native.PYTHON_INIT
    dest = ws.input / "harness" / Path(native.BINARY_INIT).name
    _stage_file(binary, dest)
    dest.chmod(0o755)  # a copy (another filesystem) is made 0644; a hard link is 0755 already
    return native.BINARY_INIT


def _stage_tree(src: Path, dest: Path) -> None:
    """The harness folder, file by file like the archives (hard links where it can: a copy of
    its 21 files was most of the staging time), without __pycache__."""
    dest.mkdir()
    dest.chmod(0o755)
    for path in sorted(src.iterdir()):
        if path.name == "__pycache__" or path.is_symlink():
            continue
        if path.is_dir():
            _stage_tree(path, dest / path.name)
        elif path.is_file():
            _stage_file(path, dest / path.name)


def _stage_file(src: Path, dest: Path) -> None:
    """Hard-link world-readable files (free), copy the rest so the sandbox user can read them."""
    if src.stat().st_mode & 0o004:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass  # another filesystem, or a read-only one
    shutil.copyfile(src, dest)
    dest.chmod(0o644)


def _sandbox_env(eco: Ecosystem, layout: Layout, baits: Baits, persona: Persona) -> dict[str, str]:
    # No proxy variable for anyone: the package's own connections must reach the fake network.
    env = {
        "PATH": SANDBOX_PATH,
        **persona.env(),
        "TMPDIR": "/tmp",
        **baits.env,
        **{k: expand_home(v, persona.home) for k, v in eco.env(layout, False).items()},
    }
    env.update(persona_node.env(persona.home, env["PATH"]))  # ~/.npm-global/bin first, NODE_PATH
    return env


def _status(outcome: PhaseOutcome) -> str:
    if outcome.timed_out:
        return "error_timeout"
    return "completed" if outcome.exit_code == 0 else "error_analysis"


def _infrastructure(net: FakeNetwork) -> set[tuple[str, int]]:
    """The fake resolver and the registry service: the sandbox's plumbing, not the package's
    sockets (the registry's flows are still in network.jsonl). Port 0: glibc and node connect() a
    UDP socket to an address to pick a source address."""
    ignored = {(net.resolver_address, 53)}
    for route in net.routes:
        if getattr(route.responder, "name", "") == "registry" and route.address and route.ports:
            ignored |= {(route.address, port) for port in (*route.ports, 0)}
    return ignored


def _probes_needed(
    eco: Ecosystem, phase: str, layout: Layout, registry: RegistryService | None, input_dir: Path
) -> bool:
    """False only for a phase that provably runs no package code (PyPI.probes_needed,
    Npm.probes_needed): what the registry service can hand the installer runs none."""
    needed = getattr(eco, "probes_needed", None)
    if needed is None or registry is None:
        return True
    if eco.name == "npm":
        if phase != "install":
            return True
        archive = input_dir / layout.archive.removeprefix("/input/") if layout.archive else None
        return bool(needed(phase, layout, registry.npm_install_code(archive, layout.name) is None))
    return bool(needed(phase, layout, registry.serves_only_wheels()))


def _phase_info(
    outcome: PhaseOutcome, status: str, n_events: int, stats: ParseStats, tracer: Tracer
) -> dict[str, Any]:
    lost = tracer.lost(stats)
    return {
        "status": status,
        "exit_code": outcome.exit_code,
        "timed_out": outcome.timed_out,
        "oom_killed": outcome.oom_killed,
        "started": round(outcome.started, 6),
        "wall_s": round(outcome.wall_s, 3),
        "peak_memory_bytes": outcome.peak_memory,
        "stdout_bytes": outcome.stdout_bytes,
        "stderr_bytes": outcome.stderr_bytes,
        "events": n_events,
        # Events the tracer knows it missed (eBPF ring buffer full): such a trace is not valid.
        "trace_valid": outcome.trace_log.exists() and n_events > 0 and lost == 0,
        "tracer": tracer.name,
        "trace_lost_events": lost,
        "trace_dropped_lines": stats.dropped,
        "trace_capped": outcome.trace_capped,  # the log hit Limits.trace_log_bytes: a syscall flood
        "trace_lines": stats.lines,
        "trace_bytes": outcome.trace_log.stat().st_size if outcome.trace_log.exists() else 0,
    }


def _package_info(ref: PackageRef) -> dict[str, Any]:
    info: dict[str, Any] = {"ecosystem": ref.ecosystem, "name": ref.name, "version": ref.version}
    if ref.archive is not None:
        info["archive"] = ref.archive.name
        info["sha256"] = hashlib.sha256(ref.archive.read_bytes()).hexdigest()
    return info


def _sandbox_info(
    limits: Limits, online: bool, wake_latency: str, locale_state: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "backend": "bwrap",
        "namespaces": ["user", "pid", "ipc", "uts", "cgroup", "net", "mount"],
        "host_uid": HOST_UID,
        "cap_drop": "ALL",
        "seccomp_deny": list(SECCOMP_DENY),
        "limits": limits.as_dict(),
        "network": "offline",  # the sandbox's view: nothing leaves, whatever --online says
        "registry_upstream": "online" if online else "offline",
        "low_wake_latency": wake_latency,  # the run's timings depend on it (sandbox/wakeup.py)
        "locales": dict(locale_state),  # the persona's: "host", "compiled" or "missing: why"
    }


def _staging_dir(out: Path) -> tuple[Path, bool]:
    """The hidden folder beside `out` the run is assembled in; and whether `out`'s parent was made."""
    made = not out.parent.exists()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp, made


def _write_run_folder(
    out: Path,
    tmp: Path,
    result: dict[str, Any],
    records: list[dict[str, Any]],
    run_info: dict[str, Any],
) -> None:
    """Complete the staging folder (events.jsonl is already there) and rename it into place."""
    from osptrack.jsonio import atomic_write_json, write_jsonl

    out = check_output_dir(out, "run")  # the user may have put files there meanwhile
    atomic_write_json(tmp / "result.json", result)
    write_jsonl(tmp / "network.jsonl", records)
    atomic_write_json(tmp / "run.json", run_info)  # last: marks the folder complete
    replace_dir(tmp, out)
