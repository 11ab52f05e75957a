"""Feature engineering: one numeric row per run, computed after noise removal on templated paths.

`FEATURES` is the registry: every column of features.parquet with what it counts, the phase,
and why it matters. `docs/features.md` is generated from it (`python -m osptrack.dataset.features`)
and a test keeps the two in step.

The per-record pass (`process_record`) walks each phase's records once; it templates each path,
flags baseline noise, and classifies the rest. Classification is cached per templated path,
because after templating the same handful of paths make up most of every report.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

from osptrack.dataset.baseline import Baseline, PhaseNoise, socket_key
from osptrack.dataset.model import PHASES, RunRecord
from osptrack.dataset.templating import Templater

# ---------------------------------------------------------------- classification tables

# Reads of these (templated) paths are what credential stealers go for.
SENSITIVE_READS: dict[str, tuple[str, str]] = {
    "ssh": (r"^<HOME>/\.ssh/", "SSH private keys, known_hosts and authorized_keys"),
    "cloud": (
        r"^<HOME>/(?:\.aws/|\.azure/|\.config/gcloud/|\.kube/config|\.docker/config\.json)",
        "cloud credentials: AWS, Azure, GCP, Kubernetes, Docker registry auth",
    ),
    "pkg_tokens": (
        r"^<HOME>/(?:\.npmrc|\.pypirc|\.gem/credentials|\.cargo/credentials|\.composer/auth\.json"
        r"|\.nuget/NuGet/NuGet\.Config|\.netrc|\.git-credentials|\.config/gh/hosts\.yml|\.yarnrc)",
        "package-manager and forge tokens (npm, PyPI, RubyGems, crates.io, Composer, NuGet, git, gh)",
    ),
    "browser": (
        r"^<HOME>/(?:\.mozilla/firefox/|\.config/(?:google-chrome|chromium|BraveSoftware|microsoft-edge|opera)/)",
        "browser profiles: saved passwords, cookies, history",
    ),
    "wallet": (
        r"(?:^<HOME>/(?:\.bitcoin/|\.electrum/|\.ethereum/|\.config/Exodus/|\.config/solana/|\.monero/)"
        r"|wallet\.dat$|nkbihfbeogaeaoehlefnkodbefgpgknn)",
        "cryptocurrency wallets and the MetaMask extension store",
    ),
    "system_accounts": (
        r"^/etc/(?:passwd|shadow|gshadow|sudoers)(?:$|\.d/)",
        "/etc/passwd, shadow and sudoers",
    ),
    "env_history": (
        r"(?:^/proc/(?:<N>|self)/environ$|^<HOME>/\.(?:bash|zsh|python|node_repl)_history$|^<HOME>/\.env$)",
        "process environments and shell histories, where tokens leak",
    ),
}

# Writes here outlive the install: persistence and planted executables.
PERSISTENCE_WRITES: dict[str, tuple[str, str]] = {
    "shell_rc": (
        r"(?:^<HOME>/\.(?:bashrc|bash_profile|profile|zshrc|zprofile|bash_login|bash_logout)$"
        r"|^/etc/(?:profile|bash\.bashrc|zsh/zshrc)$|^/etc/profile\.d/)",
        "shell start-up files run at every login",
    ),
    "autostart": (
        r"(?:^<HOME>/\.config/autostart/|^/etc/xdg/autostart/|^/etc/rc\.local$|^/etc/init\.d/)",
        "desktop autostart entries and init scripts",
    ),
    "cron": (r"(?:^/etc/cron|^/var/spool/cron/|^/etc/anacrontab$)", "cron tables"),
    "systemd": (
        r"(?:^/etc/systemd/|^/(?:usr/)?lib/systemd/system/|^<HOME>/\.config/systemd/)",
        "systemd units and timers",
    ),
    "ssh_keys": (r"^<HOME>/\.ssh/authorized_keys", "authorized_keys: a planted login key"),
    "tmp_file": (
        r"^<TMP>/",
        "files dropped in /tmp, /var/tmp or /dev/shm, outside package managers' build folders",
    ),
}

# Where a package's own install legitimately writes; anything else counts as outside the tree.
INSTALL_TREE = re.compile(
    r"^(?:<SITE>|/input/|<HOME>/project/|<TMP>/(?:pip-|tmp|npm-|<RAND>)|<HOME>/\.(?:cache|npm|local/lib|local/bin|node-gyp|cargo|gem|composer)/"
    r"|/dev/(?:null|tty|pts/|zero|u?random)|/proc/|/sys/)"
)

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox", "fish"})
DOWNLOADERS = frozenset({"curl", "wget", "aria2c", "fetch", "lwp-download"})
NETCATS = frozenset({"nc", "ncat", "netcat", "socat", "telnet"})
ENCODERS = frozenset({"base64", "base32", "xxd", "openssl", "uuencode", "gpg"})
RECON = frozenset({"whoami", "uname", "hostname", "ifconfig", "id", "ip", "lscpu", "env", "printenv", "ps"})
_INTERPRETER = re.compile(r"^(?:python[0-9.]*|node|nodejs|perl|ruby|php[0-9.]*|deno|bun)$")
_INLINE_FLAGS = frozenset({"-c", "-e", "-r", "--eval", "-p", "--print", "-E"})
_WORD = re.compile(r"[A-Za-z0-9_.+-]+")
_EXEC_MODE = re.compile(r"^(?:[ugoa]*\+[rwx]*x[rwx]*|[0-7]?[0-7]*[1357][0-7]*)$")
COMMAND_CLASSES: dict[str, str] = {
    "shell": "a shell was started (sh, bash, ...), often `sh -c` running a payload",
    "downloader": "curl, wget or another downloader appears in the command line: second-stage fetch",
    "netcat": "nc, ncat, socat or telnet: reverse shells",
    "interp_inline": "an interpreter running inline code (python -c, node -e, perl -e, php -r)",
    "encoder": "base64, xxd or openssl in the command line: obfuscated payloads or exfiltration",
    "chmod_x": "chmod setting an execute bit: a dropped binary made runnable",
    "recon": "host reconnaissance (whoami, uname, hostname, id, env, ps)",
    "tmp_exec": "a program executed from /tmp, /var/tmp or /dev/shm",
}

REGISTRY_DOMAINS: dict[str, tuple[str, ...]] = {
    "pypi": ("pypi.org", "pythonhosted.org", "pypi.python.org"),
    "npm": ("npmjs.org", "npmjs.com", "yarnpkg.com"),
    "rubygems": ("rubygems.org",),
    "packagist": ("packagist.org", "getcomposer.org", "github.com", "githubusercontent.com"),
    "crates.io": ("crates.io", "rust-lang.org"),
    "nuget": ("nuget.org",),
}
USUAL_PORTS = frozenset({53, 80, 443})

_READ_RES = {k: re.compile(v[0]) for k, v in SENSITIVE_READS.items()}
_WRITE_RES = {k: re.compile(v[0]) for k, v in PERSISTENCE_WRITES.items()}

# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Feature:
    name: str
    phase: str  # install / import / execute / run
    kind: str  # int or float (float columns can be NaN: "the source cannot tell")
    counts: str
    why: str


def _registry() -> list[Feature]:
    out: list[Feature] = []
    for p in PHASES:
        out.append(
            Feature(
                f"{p}_present", p, "int", f"1 when the {p} phase ran", "a missing phase is not zero behaviour"
            )
        )
        for kind in ("files", "sockets", "commands", "dns"):
            out.append(
                Feature(
                    f"{p}_{kind}_raw_n",
                    p,
                    "int",
                    f"{kind} records before noise removal",
                    "the paper's raw count",
                )
            )
            out.append(
                Feature(
                    f"{p}_{kind}_n",
                    p,
                    "int",
                    f"{kind} records after removing the ecosystem baseline's toolchain noise",
                    "what the package itself did",
                )
            )
        for flag in ("read", "write", "delete"):
            out.append(
                Feature(
                    f"{p}_files_{flag}_n",
                    p,
                    "int",
                    f"non-noise file records with {flag.title()} set",
                    "access mix",
                )
            )
        for cat, (_, what) in SENSITIVE_READS.items():
            out.append(
                Feature(
                    f"{p}_read_{cat}_n", p, "int", f"non-noise reads of {what}", "credential theft targets"
                )
            )
        for cat, (_, what) in PERSISTENCE_WRITES.items():
            out.append(
                Feature(
                    f"{p}_write_{cat}_n", p, "int", f"non-noise writes to {what}", "persistence, droppers"
                )
            )
        out.append(
            Feature(
                f"{p}_write_outside_tree_n",
                p,
                "int",
                "non-noise writes outside the install tree (site-packages/node_modules, build temp dirs, caches)",
                "a package has no business writing elsewhere",
            )
        )
        for cls, what in COMMAND_CLASSES.items():
            out.append(Feature(f"{p}_cmd_{cls}_n", p, "int", f"non-noise commands where {what}", "execution"))
        out.append(
            Feature(
                f"{p}_dns_nonregistry_n",
                p,
                "int",
                "distinct non-noise DNS names outside the ecosystem's registries",
                "C2 and exfiltration endpoints",
            )
        )
        out.append(
            Feature(
                f"{p}_sockets_raw_ip_n",
                p,
                "int",
                "non-noise connections to an IP address with no hostname (not loopback)",
                "hard-coded C2 addresses",
            )
        )
        out.append(
            Feature(
                f"{p}_sockets_unusual_port_n",
                p,
                "int",
                "non-noise connections to ports other than 53, 80 and 443",
                "reverse shells and custom C2 ports",
            )
        )
        out.append(
            Feature(
                f"{p}_probe_sensitive_n",
                p,
                "float",
                "distinct sensitive paths (credentials, wallets, browser profiles, /etc/shadow) the package "
                "stat'ed, access'ed, readlink'ed or failed to open, present or not (NaN without run.json probes)",
                "a stealer looks before it reads, and looking at an absent wallet is still looking",
            )
        )
        out.append(
            Feature(
                f"{p}_time_share",
                p,
                "float",
                f"share of the run's wall-clock time spent in {p} (NaN for imported results)",
                "payloads that sleep or mine stretch one phase",
            )
        )
    out += [
        Feature(
            "bait_in_payload_n",
            "run",
            "float",
            "honeytoken values (plain, base64 or hex) seen in network payloads (NaN without network.jsonl)",
            "direct evidence of exfiltration",
        ),
        Feature(
            "exfiltration_n",
            "run",
            "float",
            "exfiltration flows the run itself flagged in run.json (NaN for imports)",
            "cross-check of the above",
        ),
        Feature(
            "bait_reads_n",
            "run",
            "float",
            "reads of planted bait files recorded in run.json (NaN for imports)",
            "credential harvesting",
        ),
        Feature(
            "proc_tree_depth_max",
            "run",
            "float",
            "deepest process-tree chain in events.jsonl (NaN for imports)",
            "droppers chain shells and interpreters",
        ),
        Feature(
            "proc_n", "run", "float", "processes seen in events.jsonl (NaN for imports)", "process fan-out"
        ),
        Feature(
            "proc_detached_n",
            "run",
            "float",
            "processes that outlived their parent: daemonised or double-forked (NaN for imports)",
            "backgrounded implants survive the install",
        ),
        Feature(
            "chmod_exec_events_n",
            "run",
            "float",
            "successful chmod syscalls that set an execute bit (NaN for imports)",
            "dropped binaries",
        ),
    ]
    return out


FEATURES: list[Feature] = _registry()
FEATURE_NAMES: list[str] = [f.name for f in FEATURES]
FLOAT_FEATURES = frozenset(f.name for f in FEATURES if f.kind == "float")

# ---------------------------------------------------------------- cached classifiers


@lru_cache(maxsize=1_000_000)
def classify_path(tpath: str) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """(sensitive-read categories, persistence-write categories, outside the install tree)."""
    reads = tuple(k for k, rx in _READ_RES.items() if rx.search(tpath))
    outside = not INSTALL_TREE.match(tpath)
    # pip's and npm's own build folders under /tmp are not a dropped file.
    writes = tuple(k for k, rx in _WRITE_RES.items() if rx.search(tpath) and (k != "tmp_file" or outside))
    return reads, writes, outside


def _base(arg: str) -> str:
    return arg.rsplit("/", 1)[-1]


def classify_command(argv: list[str]) -> set[str]:
    classes: set[str] = set()
    if not argv:
        return classes
    exe = _base(argv[0])
    if exe in SHELLS:
        classes.add("shell")
    if _INTERPRETER.match(exe) and any(a in _INLINE_FLAGS for a in argv[1:]):
        classes.add("interp_inline")
    if argv[0].startswith(("/tmp/", "/var/tmp/", "/dev/shm/")):
        classes.add("tmp_exec")
    # Words of the whole line, so `sh -c "curl x | sh"` counts its inner commands too.
    words = {_base(w) for a in argv for w in _WORD.findall(a)} | {_base(a) for a in argv}
    if words & DOWNLOADERS:
        classes.add("downloader")
    if words & NETCATS:
        classes.add("netcat")
    if words & ENCODERS:
        classes.add("encoder")
    if exe in RECON or words & {"whoami", "uname", "ifconfig"}:
        classes.add("recon")
    line = " ".join(argv)
    if "chmod" in words:
        tokens = line.split()
        for i, tok in enumerate(tokens):
            if _base(tok) == "chmod" and any(_EXEC_MODE.match(t) for t in tokens[i + 1 : i + 3]):
                classes.add("chmod_x")
    return classes


def _is_raw_ip(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


def _outside_registry(ecosystem: str, hostname: str) -> bool:
    host = hostname.lower().rstrip(".")
    return not any(host == dom or host.endswith("." + dom) for dom in REGISTRY_DOMAINS.get(ecosystem, ()))


# ---------------------------------------------------------------- the per-record pass


@dataclass
class PhaseColumns:
    """Noise marks of one phase's Sockets, Commands and DNS, in record order."""

    socket_noise: list[bool] = field(default_factory=list)
    command_noise: list[bool] = field(default_factory=list)
    dns_noise: list[bool] = field(default_factory=list)


@dataclass
class NoiseFigures:
    """Counts behind the noise-reduction figures; summed over the build."""

    raw: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("files", "sockets", "commands", "dns"), 0)
    )
    exact: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("files",), 0))
    noise: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("files", "sockets", "commands", "dns"), 0)
    )
    templated_changed: int = 0  # file paths that templating rewrote

    def add(self, other: NoiseFigures) -> None:
        for mine, theirs in ((self.raw, other.raw), (self.exact, other.exact), (self.noise, other.noise)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.templated_changed += other.templated_changed


_EMPTY_NOISE = PhaseNoise()


def process_record(
    record: RunRecord, baseline: Baseline | None, templater: Templater
) -> tuple[dict[str, PhaseColumns], dict[str, float | int], NoiseFigures]:
    """Everything but Files (see filepass.py, which does those column-wise for a whole chunk)."""
    feats: dict[str, float | int] = dict.fromkeys(FEATURE_NAMES, 0)
    figures = NoiseFigures()
    columns: dict[str, PhaseColumns] = {}
    eco = record.ecosystem
    for phase in PHASES:
        result = record.phases.get(phase)
        if result is None:
            continue
        feats[f"{phase}_present"] = 1
        noise = baseline.for_phase(phase) if baseline is not None else _EMPTY_NOISE
        cols = PhaseColumns()
        columns[phase] = cols
        probes = (record.lookup_probes or {}).get(phase, set())
        _sockets(phase, result.Sockets or [], noise, cols, feats, figures, probes)
        counted = record.probes
        feats[f"{phase}_probe_sensitive_n"] = math.nan if counted is None else counted.get(phase, 0)
        _commands(phase, result.Commands or [], templater, noise, cols, feats, figures)
        _dns(phase, eco, result.DNS or [], noise, cols, feats, figures)
    _run_level(record, feats)
    return columns, feats, figures


def _sockets(phase, sockets, noise, cols, feats, figures, probes) -> None:  # type: ignore[no-untyped-def]
    n = raw_ip = unusual = 0
    for s in sockets:
        # getaddrinfo's lookup probes (UDP connects that sent nothing) are not connections
        is_noise = socket_key(s) in noise.sockets or (s.Address, s.Port) in probes
        cols.socket_noise.append(is_noise)
        if is_noise:
            continue
        n += 1
        if not s.Hostnames and _is_raw_ip(s.Address):
            raw_ip += 1
        if s.Port not in USUAL_PORTS:
            unusual += 1
    feats[f"{phase}_sockets_raw_n"] = len(sockets)
    feats[f"{phase}_sockets_n"] = n
    feats[f"{phase}_sockets_raw_ip_n"] = raw_ip
    feats[f"{phase}_sockets_unusual_port_n"] = unusual
    figures.raw["sockets"] += len(sockets)
    figures.noise["sockets"] += len(sockets) - n


def _commands(phase, commands, templater, noise, cols, feats, figures) -> None:  # type: ignore[no-untyped-def]
    n = 0
    for c in commands:
        argv = c.Command or []
        is_noise = templater.argv(argv) in noise.commands
        cols.command_noise.append(is_noise)
        if is_noise:
            continue
        n += 1
        for cls in classify_command(argv):
            key = f"{phase}_cmd_{cls}_n"
            feats[key] = int(feats[key]) + 1
    feats[f"{phase}_commands_raw_n"] = len(commands)
    feats[f"{phase}_commands_n"] = n
    figures.raw["commands"] += len(commands)
    figures.noise["commands"] += len(commands) - n


def _dns(phase, eco, dns, noise, cols, feats, figures) -> None:  # type: ignore[no-untyped-def]
    n = 0
    outside: set[str] = set()
    for d in dns:
        names = [q.Hostname.lower().rstrip(".") for q in d.Queries or ()]
        is_noise = bool(names) and all(h in noise.dns for h in names)
        cols.dns_noise.append(is_noise)
        if is_noise:
            continue
        n += 1
        outside.update(h for h in names if h and h not in noise.dns and _outside_registry(eco, h))
    feats[f"{phase}_dns_raw_n"] = len(dns)
    feats[f"{phase}_dns_n"] = n
    feats[f"{phase}_dns_nonregistry_n"] = len(outside)
    figures.raw["dns"] += len(dns)
    figures.noise["dns"] += len(dns) - n


def bait_hits(honeytokens: list[str], payloads: list[bytes]) -> int:
    """How many distinct honeytokens appear in any payload, plain, base64 or hex encoded."""
    if not honeytokens or not payloads:
        return 0
    blob = b"\n".join(payloads)
    hits = 0
    for token in honeytokens:
        raw = token.encode()
        forms = (raw, base64.b64encode(raw).rstrip(b"="), raw.hex().encode(), raw.hex().upper().encode())
        if any(form in blob for form in forms):
            hits += 1
    return hits


def _run_level(record: RunRecord, feats: dict[str, float | int]) -> None:
    nan = math.nan
    walls = record.phase_wall_s
    total = sum(walls.values()) if walls else 0.0
    for p in PHASES:
        feats[f"{p}_time_share"] = (walls.get(p, 0.0) / total) if walls and total > 0 else nan
    if record.network_payloads is None:
        feats["bait_in_payload_n"] = nan
    else:
        feats["bait_in_payload_n"] = bait_hits(record.honeytokens or [], record.network_payloads)
    feats["exfiltration_n"] = nan if record.exfiltration is None else record.exfiltration
    feats["bait_reads_n"] = nan if record.bait_reads is None else record.bait_reads
    proc = record.process
    feats["proc_tree_depth_max"] = nan if proc is None else proc.depth_max
    feats["proc_n"] = nan if proc is None else proc.processes
    feats["proc_detached_n"] = nan if proc is None else proc.detached
    feats["chmod_exec_events_n"] = nan if proc is None else proc.chmod_exec


def features_markdown() -> str:
    """docs/features.md, generated from the registry so the two cannot drift."""
    lines = [
        "# Features (`features.parquet`)",
        "",
        "One row per run, in the same order as `dataset.parquet` (join on `Row`). Key columns: `Row`,",
        "`Ecosystem`, `Name`, `Version`, `Simulation_Source`, `Label`. Every other column is numeric.",
        "",
        "All counts are taken **after noise removal** (records present in the ecosystem's null-package",
        "baseline are dropped; see `docs/dataset.md`) and on **templated paths** (`<SITE>`, `<HOME>`,",
        "`<TMP>`, `<RAND>`, `<N>`, `<PKG>`, `<VER>`), except the `*_raw_n` columns. A phase that did not",
        "run has `<phase>_present = 0` and zero counts. `float` columns are NaN where the source",
        "cannot tell (imported package-analysis results and OSPtrack CSV rows have no events.jsonl,",
        "network.jsonl or run.json).",
        "",
        "Generated from `osptrack.dataset.features.FEATURES` by `python -m osptrack.dataset.features`.",
        "",
        "## Classification rules",
        "",
        "Sensitive reads (a file record with `Read` set whose templated path matches):",
        "",
    ]
    lines += [f"- `{k}`: {what} — `{rx}`" for k, (rx, what) in SENSITIVE_READS.items()]
    lines += ["", "Writes outside the install tree (a record with `Write` set):", ""]
    lines += [f"- `{k}`: {what} — `{rx}`" for k, (rx, what) in PERSISTENCE_WRITES.items()]
    lines += [f"- `outside_tree`: any write not matching `{INSTALL_TREE.pattern}`"]
    lines += ["", "Command classes (on the argv of a non-noise command; words of the whole line count):", ""]
    lines += [f"- `{k}`: {what}" for k, what in COMMAND_CLASSES.items()]
    lines += [
        "",
        "Registries per ecosystem (a DNS name equal to or under one of these is not counted by "
        "`*_dns_nonregistry_n`):",
        "",
    ]
    lines += [f"- {eco}: {', '.join(doms)}" for eco, doms in REGISTRY_DOMAINS.items()]
    lines += [
        "",
        "## Columns",
        "",
        "| feature | phase | type | what it counts | why it matters |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| `{f.name}` | {f.phase} | {f.kind} | {f.counts} | {f.why} |" for f in FEATURES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(features_markdown())
