"""The three strace-backend levers of issue 14, each measured side by side with its old form.

Configurations, alternated in one run (a different order every round, so drift and the other
helpers' load hit all of them), each a whole in-process `osptrack.run.analyze()`:

- `new`: as shipped: no --pidns-translation (the tree from clone returns, see trace/strace.py),
  the phase's exit awaited on a pidfd, the fake network settled on a kernel-read end of traffic;
- `old-pidns`: as `new`, but strace translates pids (`--pidns-translation`, and without the
  set_tid_address/set_robust_list the new tree uses): what that lever saves;
- `old-wait`: as `new`, but the exit polled with Popen.wait(timeout) (sleeps of up to 50 ms);
- `old-settle`: as `new`, but settle() waits for two idle dispatcher rounds, as it did;
- `old-npmprobes`: as `new`, but every npm install traced with its probe syscalls, as before
  `Npm.probes_needed` (registry/npm_code.py) left them out of installs that run no package code;
- `old-tz`: as `new`, but strace's TZ unpinned (glibc stats /etc/localtime for each stamped line);
- `old-npmprobes+tz`: both, the state before the previous session's two strace levers;
- `old-locale`: as `new`, but the host's /usr/lib/locale (no locale-archive) in the sandbox, as
  before sandbox/locales.py: glibc opens ~25 files per process that sets its locale;
- `old-envwrap`: as `new`, but strace started through `env TZ=UTC strace ...` (an exec per
  phase) rather than with TZ in its environment from the runner (StraceTracer.launch_env);
- `old-locale+envwrap`: both, the state before this session's two levers;
- `old-persona-locale`: as `new`, but the archive holds the host's locales only, so the
  persona's `LANG=en_US.UTF-8` fails to load (before sandbox/locales.py compiled it in);
- `old`: all the old forms together (the state before the levers);
- `bare` (unless --no-bare): benchmarks/overhead.py's bare install + import, run on tmpfs
  (/dev/shm), so the ratios are against the fair floor of issue 14.

Prints, per package, the median of each configuration, each lever's saving (its old form minus
`new`) and the ratios against bare, then the medians over the packages, and the load average
before and after (the figures depend on it: say so when quoting them).

    .venv/bin/python benchmarks/strace_levers.py [--repeat 5] [--names six,left-pad,requests,lodash] [--configs new,old-npmprobes] [--quick]
    .venv/bin/python benchmarks/strace_levers.py --components [--repeat 9]

`--components` measures each lever alone, much less exposed to load: strace's cost per process
created in a pid namespace (a loop of /bin/true, translated or not, parse included), how late
the wait notices a command's exit, and what a phase's four settles cost after a DNS lookup and
a TCP flow.

`--capture DIR` keeps each phase's strace log of an analyze() per package and prints its calls
per syscall (each call is two stops), `bwrap` counting those of bwrap's own set-up, then the
calls with a path by where the path points (PATH_CLASSES: locale, python-stdlib, npm, ...).

    .venv/bin/python benchmarks/strace_levers.py --capture DIR [--names six,left-pad] [--configs new,old-persona-locale]

With `--configs`, each configuration's logs go to DIR/<config>/ (default: `new` only, in DIR).

`--flags` measures strace's own flags, one at a time against the shipped argv (FLAG_VARIANTS):
each variant is a whole in-process `analyze()` with the strace backend's argv rewritten, the
variants shuffled every round; it prints the medians of the run's total and of its phases' own
wall time (run.json), and each variant's difference from `shipped`. Variants that change what
the log says (-y, -X raw, ...) are there to price what the records need, not to be shipped.

    .venv/bin/python benchmarks/strace_levers.py --flags [--variants shipped,-y,...] [--repeat 5] [--names six,left-pad]

`--launch` times starting strace itself (once per phase), with and without the shipped `env` wrapper:

    .venv/bin/python benchmarks/strace_levers.py --launch [--repeat 21]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from osptrack.ecosystems.npm import Npm
from osptrack.sandbox import locales, runner
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


def _old_settle_patches(stack: ExitStack) -> None:
    """The old settle, and the dispatcher's idle rounds it counts (it now blocks between events)."""
    stack.enter_context(_patched(core, "DISPATCH_TIMEOUT_S", core.IDLE_ROUND_S))
    stack.enter_context(_patched(core.FakeNetwork, "settle", _old_settle))


def _polling_watch_init(self: runner._ExitWatch, proc: subprocess.Popen[bytes]) -> None:
    self.proc, self.fd = proc, None  # no pidfd: _ExitWatch falls back to Popen.wait(timeout)


def _then(
    command: Callable[..., list[str]], edit: Callable[[list[str]], list[str]]
) -> Callable[..., list[str]]:
    return lambda log_path, *args, **kwargs: edit(command(log_path, *args, **kwargs))


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
    "settle": lambda s: _old_settle_patches(s),
    # strace's TZ unpinned (a stat of /etc/localtime per stamped line), over whatever argv is patched in.
    "tz": lambda s: (
        s.enter_context(_patched(strace_backend.StraceTracer, "launch_env", {})),
        s.enter_context(
            _patched(
                strace_backend,
                "strace_command",
                _then(strace_backend.strace_command, FLAG_VARIANTS["tz-unpinned"]),
            )
        ),
    ),
    # strace started through `env TZ=UTC` (an exec of its own per phase), as before launch_env.
    "envwrap": lambda s: s.enter_context(
        _patched(
            strace_backend,
            "strace_command",
            _then(strace_backend.strace_command, FLAG_VARIANTS["env-wrapper"]),
        )
    ),
    # npm installs traced with their probes whatever the closure (before Npm.probes_needed).
    "npmprobes": lambda s: s.enter_context(_patched(Npm, "probes_needed", lambda self, *a: True)),
    # The host's /usr/lib/locale as it is (no archive): glibc walks the C.utf8 folder per process.
    "locale": lambda s: s.enter_context(
        _patched(locales, "view", lambda *a, **k: locales.LocaleView((), {}))
    ),
    # The archive of the host's locales only: the persona's LANG (en_US.UTF-8) missing inside.
    "persona-locale": lambda s: s.enter_context(_patched(locales, "named", lambda env: ())),
}
CONFIGS: dict[str, tuple[str, ...]] = {  # --configs picks some (`new` always)
    "new": (),
    "old-pidns": ("pidns",),
    "old-wait": ("wait",),
    "old-settle": ("settle",),
    "old-npmprobes": ("npmprobes",),
    "old-tz": ("tz",),
    "old-npmprobes+tz": ("npmprobes", "tz"),  # the previous session's two strace levers together
    "old-locale": ("locale",),
    "old-envwrap": ("envwrap",),
    "old-locale+envwrap": ("locale", "envwrap"),  # this session's two strace levers together
    "old-persona-locale": ("persona-locale",),  # before the persona's locale was compiled in
    "old": ("pidns", "wait", "settle", "npmprobes", "tz", "locale", "envwrap"),
}


# ---------------------------------------------------------------- strace's own flags (--flags)


def _swap(old: str, *new: str) -> Callable[[list[str]], list[str]]:
    def edit(argv: list[str]) -> list[str]:
        i = argv.index(old)
        return [*argv[:i], *new, *argv[i + 1 :]]

    return edit


def _drop_pair(flag: str) -> Callable[[list[str]], list[str]]:
    """Leave out `flag VALUE` (e.g. `-s 4096`)."""

    def edit(argv: list[str]) -> list[str]:
        i = argv.index(flag)
        return [*argv[:i], *argv[i + 2 :]]

    return edit


def _untrace(*names: str) -> Callable[[list[str]], list[str]]:
    def edit(argv: list[str]) -> list[str]:
        i = next(i for i, a in enumerate(argv) if a.startswith("trace="))
        kept = [n for n in argv[i][len("trace=") :].split(",") if n.lstrip("?") not in names]
        return [*argv[:i], "trace=" + ",".join(kept), *argv[i + 1 :]]

    return edit


def _string_limit(n: int) -> Callable[[list[str]], list[str]]:
    def edit(argv: list[str]) -> list[str]:
        i = argv.index("-s")
        return [*argv[: i + 1], str(n), *argv[i + 2 :]]

    return edit


# name -> how it rewrites the shipped argv (osptrack.trace.strace.strace_command's).
FLAG_VARIANTS: dict[str, Callable[[list[str]], list[str]]] = {
    "shipped": lambda argv: argv,
    "no-seccomp-bpf": _swap("--seccomp-bpf"),  # every syscall stops the tracee
    "-y": _swap("-yy", "-y"),  # paths only: no socket details, no device numbers
    "fds=path+socket": _swap("-yy", "--decode-fds=path,socket"),  # -yy without the device stat
    "no-fds": _swap("-yy"),  # no fd decoding at all (relative paths stay relative)
    "-s256": _string_limit(256),
    "no-v": _swap("-v"),
    "-Xraw": _swap("-q", "-q", "-X", "raw"),
    "no-ttt": _swap("-ttt"),
    "no-exit_group": _untrace("exit_group"),
    "no-signals": _drop_pair("-e"),
    # strace as before its TZ was pinned: glibc stats /etc/localtime for each line's stamp.
    # (In whole runs the `tz` lever also empties the backend's launch_env, which sets TZ otherwise.)
    "tz-unpinned": lambda argv: [
        a for a in argv[argv.index("TZ=UTC") + 1 if "TZ=UTC" in argv else 0 :] if a != "TZ" and a != "-E"
    ],
    # The shipped argv through `env TZ=UTC strace ...` (before the runner's launch_env set strace's TZ).
    "env-wrapper": lambda argv: (
        argv if "TZ=UTC" in argv else [shutil.which("env") or "/usr/bin/env", "TZ=UTC", *argv]
    ),
    # Every status but `detached`: strace then stages each call's line in memory and writes it
    # once at its exit (one write, no <unfinished ...>/resumed pair), in exit order.
    "staged": lambda argv: [
        *argv[: argv.index("-o")],
        "-e",
        "status=successful,failed,unfinished,unavailable",
        *argv[argv.index("-o") :],
    ],
    # Pricing only (records lost): what the probes, the tree's two calls, and every traced call cost.
    "no-probes": _untrace(*strace.PROBE_SYSCALLS),
    "no-tree": _untrace(*strace.TREE_SYSCALLS),
    "follow-only": lambda argv: [
        a if not a.startswith("trace=") else "trace=exit_group" for a in argv
    ],  # the first -e is signal=...: then strace's default (all)
    # The shipped argv, the log written to a tmpfs (/dev/shm) instead of the run's work root
    # (ext4 here): strace writes each line in two write()s. Only with --components.
    "log-tmpfs": lambda argv: argv,
}


def flag_command(edit: Callable[[list[str]], list[str]]) -> Callable[..., list[str]]:
    def command(log_path: Path, *args: Any, **kwargs: Any) -> list[str]:
        return edit(strace.strace_command(log_path, *args, **kwargs))

    return command


def flagged(entry: dict, scratch: Path, variant: str) -> tuple[float, float, float]:
    """(wall total, the phases' own wall time, CPU seconds) of one analyze() with `variant`'s argv.

    CPU is this process's plus its reaped children's (strace, which reaps the sandbox's tree):
    what tracing costs the machine, much less moved by the other sessions' load than wall time."""
    from overhead import timed_analyze  # sibling script: benchmarks/ is sys.path[0]

    before = _cpu()
    with _patched(strace_backend, "strace_command", flag_command(FLAG_VARIANTS[variant])):
        total = timed_analyze(entry, scratch, tracer="strace")
    cpu = _cpu() - before
    run = json.loads((scratch / "run" / "run.json").read_text())
    return total, sum(p["wall_s"] for p in run["phases"].values()), cpu


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def flags(entries: list[dict], variants: list[str], repeat: int) -> None:
    rng = random.Random(61)
    for entry in entries:
        times: dict[str, list[tuple[float, float, float]]] = {v: [] for v in variants}
        for _ in range(repeat):
            for variant in rng.sample(variants, len(variants)):
                scratch = Path(tempfile.mkdtemp(prefix="osptrack-levers-"))
                try:
                    times[variant].append(flagged(entry, scratch, variant))
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
        med = {v: tuple(statistics.median(x[i] for x in xs) for i in range(3)) for v, xs in times.items()}
        base = med.get("shipped")
        for v, (total, phases, cpu) in med.items():
            line = f"{entry['ecosystem']:5} {entry['name']:10} {v:16} wall {total:.3f}s  phases {phases:.3f}s  cpu {cpu:.3f}s"
            if base is not None and v != "shipped":
                line += (
                    f"  vs shipped: wall {1000 * (total - base[0]):+5.0f} ms, phases {1000 * (phases - base[1]):+5.0f} ms,"
                    f" cpu {1000 * (cpu - base[2]):+5.0f} ms"
                )
            print(line, flush=True)


# A fixed syscall mix like an interpreter's imports: absolute and missing stats, opens of files and
# directories, dirfd-relative opens, readlinks, one /dev/null open. Runs in a pid namespace.
FLAG_WORKLOAD = """
import os
for i in range(1500):
    os.stat('/usr/lib/python3/dist-packages'); os.path.exists('/usr/lib/nope%d' % i)
    with open('/usr/lib/os-release') as f: f.read()
    fd = os.open('/usr/lib', os.O_RDONLY | os.O_DIRECTORY); os.close(os.open('os-release', os.O_RDONLY, dir_fd=fd)); os.close(fd)
    os.path.realpath('/usr/lib/os-release')
    if i % 100 == 0: open('/dev/null', 'w').close()
"""


def flag_component(variant: str) -> tuple[float, float, int]:
    """(wall, CPU of strace and the tracee, log lines) of FLAG_WORKLOAD under `variant`'s argv;
    the log goes where a run writes its logs (the work root), or to /dev/shm for `log-tmpfs`."""
    from osptrack.sandbox.runner import work_root

    logs = Path(
        tempfile.mkdtemp(prefix="osptrack-levers-", dir="/dev/shm" if variant == "log-tmpfs" else work_root())
    )
    try:
        return _flag_component(variant, logs / "trace.log")
    finally:
        shutil.rmtree(logs, ignore_errors=True)


def _flag_component(variant: str, log: Path) -> tuple[float, float, int]:
    argv = flag_command(FLAG_VARIANTS[variant])(log)
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    subprocess.run([*argv, *_bwrap(f'exec /usr/bin/python3 -c "{FLAG_WORKLOAD}"')], check=True, timeout=300)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    with open(log, encoding="latin-1") as fh:
        lines = sum(1 for _ in fh)
    return wall, cpu, lines


def flag_components(variants: list[str], repeat: int) -> None:
    rng = random.Random(62)
    times: dict[str, list[tuple[float, float, int]]] = {v: [] for v in variants}
    for _ in range(repeat):
        for variant in rng.sample(variants, len(variants)):
            times[variant].append(flag_component(variant))
    base = None
    for v, xs in times.items():
        wall, cpu = statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs)
        lines = statistics.median(x[2] for x in xs)
        if v == "shipped":
            base = (wall, cpu)
        line = f"{v:16} wall {wall:.3f}s  cpu {cpu:.3f}s  lines {lines:.0f}  cpu/line {1e6 * cpu / lines:5.1f} us"
        if base is not None and v != "shipped":
            line += f"  vs shipped: wall {100 * (wall / base[0] - 1):+5.1f}%, cpu {100 * (cpu / base[1] - 1):+5.1f}%"
        print(line, flush=True)


# ---------------------------------------------------------------- where the stops go (--capture)

_CALL = re.compile(r"^(\d+)\s+[\d.]+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")


def count_log(log: Path) -> tuple[collections.Counter[str], int, int]:
    """(calls per syscall, with `name(EMPTY)` for fd stats, and `bwrap` for the calls bwrap
    makes before it execs the sandbox's init; pids; lines). Each call is two stops (seccomp
    entry, syscall exit); a resumed half is counted with its call."""
    calls: collections.Counter[str] = collections.Counter()
    pids: set[str] = set()
    lines = 0
    setup: str | None = None  # bwrap's namespace child, until it execs the init
    with open(log, encoding="latin-1") as fh:
        for line in fh:
            lines += 1
            m = _CALL.match(line)
            if not m or m.group(2):
                continue
            pid, name = m.group(1), m.group(3)
            if name == "clone" and setup is None and "CLONE_NEWPID" in line:
                setup = line.rsplit("= ", 1)[-1].strip()
            pids.add(pid)
            calls[name] += 1
            if "AT_EMPTY_PATH" in line:
                calls[name + "(EMPTY)"] += 1
            if pid == setup:
                if name == "execve":
                    setup = ""
                else:
                    calls["bwrap"] += 1
    return calls, len(pids), lines


_PATH_ARG = re.compile(r'^\d+\s+[\d.]+\s+(\w+)\((?:(?:AT_FDCWD|\d+)<[^>]*>, )?"([^"]*)"')
# Where a traced call's path points, longest prefix first (`bwrap` set-up paths are /newroot, /oldroot).
PATH_CLASSES = (
    ("/usr/lib/locale/", "locale"),
    ("/usr/share/locale/", "locale-messages"),
    ("/usr/lib/x86_64-linux-gnu/gconv/", "gconv"),
    ("/usr/lib/python3", "python-stdlib"),
    ("/usr/local/lib/python3", "python-persona"),
    ("/usr/lib/node_modules/", "npm"),
    ("/usr/share/nodejs/", "node-share"),
    ("/usr/lib/x86_64-linux-gnu/", "shared-libs"),
    ("/lib/", "shared-libs"),
    ("/etc/", "etc"),
    ("/proc/", "proc"),
    ("self/", "proc"),
    ("/dev/", "dev"),
    ("/tmp/", "tmp"),
    ("/home/", "home"),
    ("/input/", "input"),
    ("/newroot", "bwrap-setup"),
    ("/oldroot", "bwrap-setup"),
    ("/usr/", "usr-other"),
    ("", "other"),
)


def path_classes(log: Path) -> collections.Counter[str]:
    """Calls with a path argument, by `PATH_CLASSES` ("" for fd-only calls such as fstat)."""
    counts: collections.Counter[str] = collections.Counter()
    with open(log, encoding="latin-1") as fh:
        for line in fh:
            m = _PATH_ARG.match(line)
            if m:
                path = m.group(2)
                counts[next(c for pre, c in PATH_CLASSES if path.startswith(pre)) if path else "fd"] += 1
    return counts


def capture(entries: list[dict], root: Path, configs: list[str] | None = None) -> None:
    """analyze() each entry under strace, keeping each phase's log in `root` (or, per config,
    in root/<config>/); print the counts."""
    from overhead import timed_analyze  # sibling script: benchmarks/ is sys.path[0]

    from osptrack import run as run_module

    for entry in entries:
        for config in configs or ["new"]:
            out = root / config if configs else root
            out.mkdir(parents=True, exist_ok=True)
            if configs:
                print(f"[{config}]", flush=True)
            _capture_one(entry, out, CONFIGS[config], timed_analyze, run_module)


def _capture_one(entry: dict, out: Path, old: tuple[str, ...], timed_analyze: Any, run_module: Any) -> None:
    name = entry["name"]
    keep = lambda ws, phase, name=name: out / f"{name}.{phase}.strace"  # noqa: E731
    scratch = Path(tempfile.mkdtemp(prefix="osptrack-levers-"))
    try:
        with ExitStack() as stack:
            for lever in old:
                LEVERS[lever](stack)
            stack.enter_context(_patched(runner, "trace_log", keep))
            stack.enter_context(_patched(run_module, "trace_log", keep))
            took = timed_analyze(entry, scratch, tracer="strace")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for log in sorted(out.glob(f"{name}.*.strace")):
        calls, pids, lines = count_log(log)
        total = sum(v for k, v in calls.items() if "(" not in k and k != "bwrap")
        top = ", ".join(f"{k} {v}" for k, v in calls.most_common(8))
        print(
            f"{log.name:28} {took:6.2f}s  lines {lines:6}  calls {total:6}  pids {pids:3}  {top}",
            flush=True,
        )
        where = ", ".join(f"{k} {v}" for k, v in path_classes(log).most_common(8))
        print(f"{'':28} by path: {where}", flush=True)


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
            _old_settle_patches(stack)
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


def launch(repeat: int) -> None:
    """What starting strace costs a phase: /bin/true alone, under the shipped prefix, without its
    `env TZ=UTC` wrapper, and under a bare `strace -f --seccomp-bpf` (medians, ms)."""
    with tempfile.TemporaryDirectory(prefix="osptrack-levers-") as tmp:
        log = Path(tmp) / "trace.log"
        shipped = strace.strace_command(log)
        variants = {
            "true alone": [],
            "shipped prefix": shipped,
            "without env wrapper": shipped[shipped.index(strace.strace_binary()) :],
            "strace -f --seccomp-bpf": [
                strace.strace_binary(),
                "-f",
                "--seccomp-bpf",
                "-e",
                "trace=execve",
                "-o",
                str(log),
                "--",
            ],
            "strace -V (load only)": [strace.strace_binary(), "-V"],
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        rng = random.Random(63)
        for _ in range(repeat):
            for name in rng.sample(list(variants), len(variants)):
                argv = variants[name] if name.endswith("(load only)") else [*variants[name], "/bin/true"]
                t0 = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True)
                times[name].append(time.perf_counter() - t0)
    for name, xs in times.items():
        print(f"{name:26} {1000 * statistics.median(xs):6.1f} ms", flush=True)


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--names", default=DEFAULT_NAMES, help="comma-separated corpus names")
    parser.add_argument("--quick", action="store_true", help="2 rounds of six only")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare install on tmpfs")
    parser.add_argument(
        "--configs", default=None, help="whole-run configurations (`new` always; default: all)"
    )
    parser.add_argument("--capture", type=Path, help="keep each phase's strace log here and count its calls")
    parser.add_argument("--components", action="store_true", help="each lever alone, not whole runs")
    parser.add_argument("--flags", action="store_true", help="strace's own flags, one at a time")
    parser.add_argument("--launch", action="store_true", help="what starting strace costs a phase")
    parser.add_argument("--variants", default=",".join(FLAG_VARIANTS), help="with --flags: which variants")
    args = parser.parse_args()
    if args.launch:
        print(f"launch, {args.repeat} rounds, before: {load()}", flush=True)
        launch(args.repeat)
        print(f"after: {load()} (the machine is shared: figures under load, medians of {args.repeat})")
        return
    if args.components and not args.flags:
        print(f"components, {args.repeat} rounds, cpus={os.cpu_count()}, before: {load()}", flush=True)
        components(args.repeat)
        print(f"after: {load()} (the machine is shared: figures under load, medians of {args.repeat})")
        return
    if args.quick:
        args.repeat, args.names = 2, "six"
    entries = json.loads((CORPUS / "manifest.json").read_text())["packages"]
    names = args.names.split(",")
    entries = sorted((e for e in entries if e["name"] in names), key=lambda e: names.index(e["name"]))
    if args.capture is not None:
        print(f"capture, {len(entries)} packages, before: {load()}", flush=True)
        chosen = args.configs.split(",") if args.configs else None
        unknown = [c for c in chosen or () if c not in CONFIGS]
        if unknown:
            raise SystemExit(f"unknown configs {unknown} (one of: {', '.join(CONFIGS)})")
        capture(entries, args.capture, chosen)
        return
    if args.flags and args.components:
        variants = args.variants.split(",")
        print(f"flag components, {args.repeat} rounds, cpus={os.cpu_count()}, before: {load()}", flush=True)
        flag_components(variants, args.repeat)
        print(f"after: {load()} (the machine is shared: figures under load, medians of {args.repeat})")
        return
    if args.flags:
        variants = args.variants.split(",")
        unknown = [v for v in variants if v not in FLAG_VARIANTS]
        if unknown:
            raise SystemExit(f"unknown variants {unknown} (one of: {', '.join(FLAG_VARIANTS)})")
        print(
            f"flags, {len(entries)} packages, {args.repeat} rounds, cpus={os.cpu_count()}, before: {load()}",
            flush=True,
        )
        flags(entries, variants, args.repeat)
        print(f"after: {load()} (the machine is shared: figures under load, medians of {args.repeat})")
        return
    found = None if args.no_bare else _bare()
    print(
        f"{len(entries)} packages, {args.repeat} rounds, cpus={os.cpu_count()}, before: {load()}", flush=True
    )
    with ExitStack() as stack:
        bare_root = stack.enter_context(found[1]()) if found is not None else None
        configs = ["new", *(c for c in (args.configs or ",".join(CONFIGS)).split(",") if c != "new")]
        unknown = [c for c in configs if c not in CONFIGS]
        if unknown:
            raise SystemExit(f"unknown configs {unknown} (one of: {', '.join(CONFIGS)})")
        rows = measure(entries, args.repeat, found[0] if found else None, bare_root, configs)
    report(rows, args.repeat, configs)


def measure(
    entries: list[dict],
    repeat: int,
    bare: Callable[[dict, Path], float] | None,
    bare_root: Path | None,
    configs: list[str],
) -> list[tuple[str, dict[str, float]]]:
    kinds = [*configs, *(["bare"] if bare is not None else [])]
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
            f"{k[4:]} {1000 * (med[k] - med['new']):+5.0f} ms" for k in configs if k.startswith("old-")
        )
        line = f"{entry['ecosystem']:5} {entry['name']:10} new {med['new']:.3f}s  saved: {saved}"
        if "old" in med:
            line += f"  all {1000 * (med['old'] - med['new']):+5.0f} ms"
        if "bare" in med:
            line += f"  | bare(tmpfs) {med['bare']:.3f}s  ratio " + " ".join(
                f"{k} {med[k] / med['bare']:.2f}" for k in configs
            )
        print(line, flush=True)
    return rows


def report(rows: list[tuple[str, dict[str, float]]], repeat: int, configs: list[str]) -> None:
    print()
    for kind in configs:
        if kind.startswith("old"):
            saving = statistics.median(1000 * (m[kind] - m["new"]) for _, m in rows)
            print(f"median saving of {kind[4:] or 'all':9}: {saving:+.0f} ms")
    if all("bare" in m for _, m in rows):
        for kind in configs:
            ratio = statistics.median(m[kind] / m["bare"] for _, m in rows)
            print(f"median ratio against bare on tmpfs, {kind:3}: {ratio:.2f}")
    print(f"after: {load()} (the machine is shared: figures under load, medians of {repeat})")


if __name__ == "__main__":
    main()
