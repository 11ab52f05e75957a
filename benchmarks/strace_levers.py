"""The three strace-backend levers of issue 14, each measured side by side with its old form.

Configurations, alternated in one run (a different order every round, so drift and the other
helpers' load hit all of them), each a whole in-process `osptrack.run.analyze()`:

- `new`: as shipped: no --pidns-translation (the tree from clone returns, see trace/strace.py),
  the phase's exit awaited on a pidfd, the fake network settled on a kernel-read end of traffic;
- `old-pidns`: as `new`, but strace translates pids (`--pidns-translation`, and without the
  set_tid_address/set_robust_list the new tree uses): what that lever saves;
- `old-wait`: as `new`, but the exit polled with Popen.wait(timeout) (sleeps of up to 50 ms);
- `old-settle`: as `new`, but settle() waits for two idle dispatcher rounds, as it did;
- `old`: all three old forms together (the state before the levers);
- `bare` (unless --no-bare): benchmarks/overhead.py's bare install + import, run on tmpfs
  (/dev/shm), so the ratios are against the fair floor of issue 14.

Prints, per package, the median of each configuration, each lever's saving (its old form minus
`new`) and the ratios against bare, then the medians over the packages, and the load average
before and after (the figures depend on it: say so when quoting them).

    .venv/bin/python benchmarks/strace_levers.py [--repeat 5] [--names six,left-pad,requests,lodash] [--quick]
    .venv/bin/python benchmarks/strace_levers.py --components [--repeat 9]

`--components` measures each lever alone, much less exposed to load: strace's cost per process
created in a pid namespace (a loop of /bin/true, translated or not, parse included), how late
the wait notices a command's exit, and what a phase's four settles cost after a DNS lookup and
a TCP flow.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from osptrack.sandbox import runner
from osptrack.sandbox.fakenet import core
from osptrack.trace import strace
from osptrack.trace.tracers import strace as strace_backend

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
DEFAULT_NAMES = "six,left-pad,requests,lodash"


# ---------------------------------------------------------------- the old forms, patched in


def _translated_command(log_path: Path, *args: Any, **kwargs: Any) -> list[str]:
    argv = strace.strace_command(log_path, *args, **kwargs)
    argv.insert(argv.index("--seccomp-bpf") + 1, "--pidns-translation")
    i = next(i for i, a in enumerate(argv) if a.startswith("trace="))
    names = [n for n in argv[i][len("trace=") :].split(",") if n.lstrip("?") not in strace.TREE_SYSCALLS]
    argv[i] = "trace=" + ",".join(names)
    return argv


def _old_settle(self: core.FakeNetwork, timeout: float | None = None) -> bool:
    """settle() before the lever: two idle select rounds of the dispatcher after the call."""
    deadline = time.time() + (self.idle_timeout + 1.0 if timeout is None else timeout)
    if self._dispatcher is None or not self._dispatcher.is_alive():
        return True
    start_round = self._idle_rounds
    settled = False
    while time.time() < deadline:
        busy = any(h.is_alive() for h in list(self._handlers))
        if not busy and self._idle_rounds >= start_round + 2:
            settled = True
            break
        time.sleep(core.IDLE_ROUND_S / 2)
    late = time.time() + core.RECORDING_WAIT_S
    while self._recording and time.time() < late:
        time.sleep(core.IDLE_ROUND_S / 2)
    return settled


def _polling_watch_init(self: runner._ExitWatch, proc: subprocess.Popen[bytes]) -> None:
    self.proc, self.fd = proc, None  # no pidfd: _ExitWatch falls back to Popen.wait(timeout)


@contextmanager
def _patched(obj: object, name: str, value: object) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


LEVERS: dict[str, Callable[[ExitStack], None]] = {
    # The strace backend builds its argv through this name (osptrack.trace.tracers.strace).
    "pidns": lambda s: s.enter_context(_patched(strace_backend, "strace_command", _translated_command)),
    "wait": lambda s: s.enter_context(_patched(runner._ExitWatch, "__init__", _polling_watch_init)),
    "settle": lambda s: s.enter_context(_patched(core.FakeNetwork, "settle", _old_settle)),
}
CONFIGS: dict[str, tuple[str, ...]] = {
    "new": (),
    "old-pidns": ("pidns",),
    "old-wait": ("wait",),
    "old-settle": ("settle",),
    "old": ("pidns", "wait", "settle"),
}


# ---------------------------------------------------------------- one measurement


def traced(entry: dict, scratch: Path, old: tuple[str, ...]) -> float:
    from overhead import timed_analyze  # sibling script: benchmarks/ is sys.path[0]

    with ExitStack() as stack:
        for lever in old:
            LEVERS[lever](stack)
        return timed_analyze(entry, scratch, tracer="strace")  # the levers are strace's


def _bare() -> tuple[Callable[[dict, Path], float], Callable[[], Any]] | None:
    """benchmarks/overhead.py's bare side and its tmpfs (sibling script: benchmarks/ is sys.path[0])."""
    try:
        from overhead import bare, tmpfs_root
    except ImportError:
        return None
    return bare, tmpfs_root


# ---------------------------------------------------------------- each lever alone (--components)

PROCS = 200  # processes the pid-namespace loop starts


def _bwrap(script: str) -> list[str]:
    argv = ["bwrap", "--unshare-pid", "--unshare-net", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        if Path("/" + name).is_symlink():
            argv += ["--symlink", os.readlink("/" + name), "/" + name]
    return [*argv, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/bin/sh", "-c", script]


def pidns_component(old: bool, scratch: Path) -> float:
    """Seconds per process created in a pid namespace under strace, translated or not (parse included)."""
    log = scratch / "trace.log"
    prefix = _translated_command(log) if old else strace.strace_command(log)
    script = f"i=0; while [ $i -lt {PROCS} ]; do /bin/true; i=$((i+1)); done"
    t0 = time.monotonic()
    subprocess.run([*prefix, *_bwrap(script)], check=True, capture_output=True, timeout=300)
    stats = strace.ParseStats()
    events = list(strace.parse_log(log, "install", stats=stats))
    took = time.monotonic() - t0
    if sum(1 for e in events if e.op == "clone" and e.child_pid) < PROCS:
        raise SystemExit(f"pidns component: clones without child_pid ({stats})")
    return took / PROCS


def wait_component(old: bool, scratch: Path) -> float:
    """How long after a 0.2 s command exits the phase's wait notices (the command's own run excluded)."""
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 0.2; date +%s.%N"], stdout=subprocess.PIPE, text=True)
    watch = runner._ExitWatch(proc)
    if old:
        watch.close()  # no pidfd: Popen.wait(timeout), the old polling
    try:
        timed_out, _ = runner._wait(watch, time.monotonic() + 30, scratch / "none.log", 1 << 30)
        seen = time.time()
    finally:
        watch.close()
    assert proc.stdout is not None and not timed_out
    return seen - float(proc.stdout.read())


def settle_component(old: bool, scratch: Path) -> float:
    """Seconds the four records()/exfiltration() reads of a phase take after a DNS lookup and a
    TCP flow (the fake network's settle calls of a run with one phase)."""
    net = core.FakeNetwork(run_id=f"lv-{os.getpid()}-{time.monotonic_ns() % 10**8}")
    with ExitStack() as stack:
        if old:
            stack.enter_context(_patched(core.FakeNetwork, "settle", _old_settle))
        with net:
            code = (
                "import socket; socket.getaddrinfo('files.example.org', 443); "
                "s = socket.create_connection(('192.0.2.9', 8080)); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); s.close()"
            )
            subprocess.run(
                ["/usr/bin/python3", "-c", code], preexec_fn=net.enter_netns, check=True, timeout=60
            )  # noqa: PLW1509
            t0 = time.monotonic()
            for _ in range(3):
                net.records()
            net.exfiltration()
            took = time.monotonic() - t0
            if not any(r.get("kind") == "tcp" for r in net.records(settle=False)):
                raise SystemExit("settle component: the TCP flow was not recorded")
    return took


COMPONENTS: dict[str, Callable[[bool, Path], float]] = {
    "pidns": pidns_component,
    "wait": wait_component,
    "settle": settle_component,
}


def components(repeat: int) -> None:
    rng = random.Random(41)
    for name, measure_one in COMPONENTS.items():
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeat):
            for old in rng.sample([True, False], 2):  # alternate, in a random order each round
                with tempfile.TemporaryDirectory(prefix="osptrack-levers-") as tmp:
                    times[old].append(measure_one(old, Path(tmp)))
        o, n = statistics.median(times[True]), statistics.median(times[False])
        unit = "per process" if name == "pidns" else "per phase" if name == "wait" else "per phase's 4 reads"
        print(
            f"{name:6}: old {1000 * o:7.2f} ms  new {1000 * n:7.2f} ms  saved {1000 * (o - n):+7.2f} ms {unit}",
            flush=True,
        )


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--names", default=DEFAULT_NAMES, help="comma-separated corpus names")
    parser.add_argument("--quick", action="store_true", help="2 rounds of six only")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare install on tmpfs")
    parser.add_argument("--components", action="store_true", help="each lever alone, not whole runs")
    args = parser.parse_args()
    if args.components:
        print(f"components, {args.repeat} rounds, cpus={os.cpu_count()}, before: {load()}", flush=True)
        components(args.repeat)
        print(f"after: {load()} (the machine is shared: figures under load, medians of {args.repeat})")
        return
    if args.quick:
        args.repeat, args.names = 2, "six"
    entries = json.loads((CORPUS / "manifest.json").read_text())["packages"]
    names = args.names.split(",")
    entries = sorted((e for e in entries if e["name"] in names), key=lambda e: names.index(e["name"]))
    found = None if args.no_bare else _bare()
    print(
        f"{len(entries)} packages, {args.repeat} rounds, cpus={os.cpu_count()}, before: {load()}", flush=True
    )
    with ExitStack() as stack:
        bare_root = stack.enter_context(found[1]()) if found is not None else None
        rows = measure(entries, args.repeat, found[0] if found else None, bare_root)
    report(rows, args.repeat)


def measure(
    entries: list[dict], repeat: int, bare: Callable[[dict, Path], float] | None, bare_root: Path | None
) -> list[tuple[str, dict[str, float]]]:
    kinds = [*CONFIGS, *(["bare"] if bare is not None else [])]
    rng = random.Random(14)
    rows = []
    for entry in entries:
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(repeat):
            order = kinds[:]
            rng.shuffle(order)  # alternate: drift and load hit every configuration alike
            for kind in order:
                where = bare_root if kind == "bare" else None  # bare on tmpfs, as osptrack's home
                scratch = Path(tempfile.mkdtemp(prefix="osptrack-levers-", dir=where))
                try:
                    if kind == "bare":
                        assert bare is not None
                        times[kind].append(bare(entry, scratch))
                    else:
                        times[kind].append(traced(entry, scratch, CONFIGS[kind]))
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((entry["name"], med))
        saved = "  ".join(
            f"{k[4:]} {1000 * (med[k] - med['new']):+5.0f} ms" for k in CONFIGS if k.startswith("old-")
        )
        line = f"{entry['ecosystem']:5} {entry['name']:10} new {med['new']:.3f}s  old {med['old']:.3f}s  saved: {saved}"
        line += f"  all {1000 * (med['old'] - med['new']):+5.0f} ms"
        if "bare" in med:
            line += f"  | bare(tmpfs) {med['bare']:.3f}s  ratio old {med['old'] / med['bare']:.2f}"
            line += f" new {med['new'] / med['bare']:.2f}"
        print(line, flush=True)
    return rows


def report(rows: list[tuple[str, dict[str, float]]], repeat: int) -> None:
    print()
    for kind in CONFIGS:
        if kind.startswith("old"):
            saving = statistics.median(1000 * (m[kind] - m["new"]) for _, m in rows)
            print(f"median saving of {kind[4:] or 'all three':9}: {saving:+.0f} ms")
    if all("bare" in m for _, m in rows):
        for kind in ("old", "new"):
            ratio = statistics.median(m[kind] / m["bare"] for _, m in rows)
            print(f"median ratio against bare on tmpfs, {kind:3}: {ratio:.2f}")
    print(f"after: {load()} (the machine is shared: figures under load, medians of {repeat})")


if __name__ == "__main__":
    main()
