"""A loopback-only network namespace whose every destination is answered locally.

`NetNamespace` creates `/run/netns/osptrack-<run_id>` with nothing but `lo`:

* AnyIP routes (`local 0.0.0.0/0` and `local ::/0` on `lo`) make every IPv4/IPv6 address "ours",
  so a connect to 1.2.3.4 or 2001:db8::1 loops back through `lo` instead of failing with
  ENETUNREACH. There is no other interface, no veth and no route out: a packet cannot leave.
* Two infrastructure addresses are added to `lo` (198.18.0.1/32, fd5e:1800::1/128). Without a
  non-loopback address glibc's `AI_ADDRCONFIG` treats the machine as offline and returns
  EAI_NONAME before asking DNS, so clients that pass it would never show their lookups.
* An nft table (`inet osptrack`, prerouting, mangle priority) diverts packets with `tproxy`:
  TCP/UDP port 53 to the DNS port, all other TCP to the TCP catch-all, all other UDP to the UDP
  catch-all. Locally generated packets to an AnyIP address traverse `lo`'s prerouting hook, so
  tproxy sees them.

Why tproxy and not `redirect`: redirect (DNAT) hides the original destination. TCP could get it
back with SO_ORIGINAL_DST, but the kernel offers that only for TCP/SCTP, so UDP (and DNS sent
straight to 8.8.8.8) would lose it. With tproxy the destination is never rewritten: an accepted
TCP socket's `getsockname()` *is* the original destination, and a UDP socket with
IP_RECVORIGDSTADDR gets it as ancillary data, identically for IPv4 and IPv6. Replies leave from a
socket bound to that original address (possible because of the AnyIP route), so clients that
`connect()` their UDP socket accept them. `tproxy` is not a terminal statement (a later rule
would re-steer the packet: DNS ended up in the UDP catch-all until this was found), hence the
`accept` after each one. `ct direction reply accept` keeps replies -- ours to the client, and
the client's own sockets' return traffic -- from being diverted a second time.

Loopback destinations (127.0.0.0/8, ::1) are left alone except port 53, so a package's own
local servers keep working; `nameserver 127.0.0.53` therefore works as well as the documented
resolver address.

A workstation's network card: with `eth0`, a veth link named eth0 gets the persona's MAC and
address, and a default route via the subnet's .1, so `ip addr`, `ip route` and psutil show what a
laptop on a home network shows (UP, LOWER_UP). Its peer sits alone in a sibling namespace
`<name>.nic` that has nothing else (no address, no route, no other link), so a frame sent on eth0
ends there. Nothing is sent on it anyway: the local table (looked up before main) has
`local 0.0.0.0/0 dev lo`, so every destination, the "gateway" included, is answered on lo. (The
`dummy` link type would need no peer, but kernels without the dummy module are common in
containers.) The sibling is deleted with its namespace and swept with it. Two `local` routes cover eth0's
own subnet, so LAN addresses are answered on lo too (see `_configure`).

Joining: `enter_netns(path)` (setns(CLONE_NEWNET)) for a thread or a subprocess preexec_fn, or
`nsenter --net=PATH` in front of the command. A process in a child user namespace (bwrap
--unshare-user, cap-drop ALL) cannot change the routes or the nft rules: the namespace belongs
to the initial user namespace (checked: `nft flush ruleset`, `ip route del`, `ip link add ...
veth` all fail with EPERM inside bwrap).

Lifecycle: names are unique per run id and creation is serialised with a file lock (first use of
/run/netns races in iproute2), so parallel runs coexist. `delete()` removes the name; the kernel
frees the namespace when the last socket/thread in it is gone. `sweep_stale()` removes the
namespaces of runs that were killed before they could clean up.

Cost: the namespaces are made and removed in-process, as `ip netns add/del` does it (a thread
unshares and bind-mounts its namespace on the name; umount2 + unlink), and the configuration is
two `ip -batch` processes and one `nft`, the last two at the same time: 3 processes per run
instead of 9 (benchmarks/setup_cost.py counts them). The peer gets IPv6 disabled by default
before its eth0 exists, so no sysctl process either.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osptrack.errors import BadInput
from osptrack.sandbox.mounts import MS_BIND, MS_REC, MS_SHARED, mount, umount_detach, unshare

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
NETNS_PREFIX = "osptrack-"

# Fixed ports are fine: every namespace has its own port space. All are privileged (< 1024), so a
# sandboxed process without CAP_NET_BIND_SERVICE can never take them first.
TCP_CATCHALL_PORT = 1
UDP_CATCHALL_PORT = 1
DNS_PORT = 2

# 198.18.0.0/15 (RFC 2544 benchmarking) is never routed on the internet. 198.18.0.0/24 is kept
# for infrastructure; names get sinkholes from 198.18.1.0 up (see fakenet/sinkholes.py).
LOCAL_ADDRESS_V4 = "198.18.0.1"
LOCAL_ADDRESS_V6 = "fd5e:1800::1"

# `ip netns add` makes /run/netns a shared mount point on first use; parallel first calls race.
_CREATE_LOCK = Path("/run/osptrack-netns.lock")

NIC_SUFFIX = ".nic"  # the sibling namespace holding eth0's peer

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


class NetnsError(RuntimeError):
    """Setting up or tearing down the namespace failed (message carries the command's stderr)."""


def netns_name(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise BadInput(f"run id {run_id!r} is not usable in a namespace name (letters, digits, ._- only)")
    return NETNS_PREFIX + run_id


def nft_ruleset(
    tcp_port: int = TCP_CATCHALL_PORT, udp_port: int = UDP_CATCHALL_PORT, dns_port: int = DNS_PORT
) -> str:
    """The rules loaded into the namespace (inet family: one table serves IPv4 and IPv6)."""
    return f"""table inet osptrack {{
  chain divert {{
    type filter hook prerouting priority mangle; policy accept;
    ct direction reply accept
    meta l4proto {{ tcp, udp }} th dport 53 tproxy to :{dns_port} accept
    ip daddr 127.0.0.0/8 accept
    ip6 daddr ::1 accept
    meta l4proto tcp tproxy to :{tcp_port} accept
    meta l4proto udp tproxy to :{udp_port} accept
  }}
}}
"""


def _libc_setns() -> Any:
    # dlopen(NULL): the interpreter's own libc, without find_library's `ldconfig -p` (~9 ms per start)
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.setns
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_setns = _libc_setns()


def setns_fd(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`."""
    if _setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


def enter_netns(path: str | os.PathLike[str]) -> None:
    """Move the calling thread (or a freshly forked child) into the namespace at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns_fd(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _creation_lock() -> Iterator[None]:
    """Serialise namespace creation across threads and processes (batch workers)."""
    with open(_CREATE_LOCK, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tasks_in_namespaces() -> set[tuple[int, int]]:
    """(st_dev, st_ino) of the network namespace of every thread on the machine."""
    found: set[tuple[int, int]] = set()
    for task_ns in Path("/proc").glob("[0-9]*/task/[0-9]*/ns/net"):
        with contextlib.suppress(OSError):
            st = os.stat(task_ns)
            found.add((st.st_dev, st.st_ino))
    return found


def sweep_stale(min_age_s: float = 600.0, only: Iterable[str] | None = None) -> list[str]:
    """Delete `osptrack-*` namespaces left by a killed run; returns their names.

    Stale means: older than `min_age_s` and no thread on the machine is inside it. A live
    FakeNetwork always has its dispatcher thread inside, and a live sandbox its processes, so
    concurrent runs (other workers, other batches) are never touched. Call it when a batch starts.
    `only` restricts the sweep to these namespace names.
    """
    wanted = None if only is None else set(only)
    if not NETNS_DIR.is_dir():
        return []
    removed = []
    now = time.time()
    # Scanning every thread's namespace takes 5-80 ms (more under load): only when there is a
    # namespace old enough to be a candidate.
    in_use: set[tuple[int, int]] = set()
    if any(_older_than(p, now - min_age_s) for p in NETNS_DIR.glob(NETNS_PREFIX + "*")):
        in_use = _tasks_in_namespaces()
    for path in sorted(NETNS_DIR.glob(NETNS_PREFIX + "*")):
        if path.name.endswith(NIC_SUFFIX):  # no thread ever enters it: it goes with its namespace
            if not (NETNS_DIR / path.name.removesuffix(NIC_SUFFIX)).exists():
                with contextlib.suppress(NetnsError):
                    _remove_namespace(path)
            continue
        if wanted is not None and path.name not in wanted:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if now - st.st_mtime < min_age_s or (st.st_dev, st.st_ino) in in_use:
            continue
        with contextlib.suppress(NetnsError):
            _remove_namespace(path)
            removed.append(path.name)
        if (NETNS_DIR / (path.name + NIC_SUFFIX)).exists():
            with contextlib.suppress(NetnsError):
                _remove_namespace(NETNS_DIR / (path.name + NIC_SUFFIX))
    return removed


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return os.stat(path).st_mtime <= cutoff
    except OSError:
        return False


def _run(argv: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.returncode}")


def _shared_netns_dir() -> None:
    """What `ip netns add` does first: /run/netns is a shared mount point, so a name bound there
    shows in mount namespaces made later too (`ip netns exec`, other tools)."""
    NETNS_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        mount("none", NETNS_DIR, "none", MS_SHARED | MS_REC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: not a mount point yet
            raise
        mount(str(NETNS_DIR), NETNS_DIR, "none", MS_BIND | MS_REC)
        mount("none", NETNS_DIR, "none", MS_SHARED | MS_REC)


def _add_namespace(path: Path, sysctls: dict[str, str] | None = None) -> None:
    """`ip netns add`, in-process: a short-lived thread unshares a new network namespace (only
    that thread moves), writes `sysctls` there (/proc/sys/net is the calling thread's
    namespace's) and bind-mounts it on `path`; the thread's exit leaves the mount holding it."""
    failure: list[BaseException] = []

    def make() -> None:
        try:
            unshare(CLONE_NEWNET)
            for key, value in (sysctls or {}).items():
                Path("/proc/sys", key.replace(".", "/")).write_text(value)
            mount("/proc/thread-self/ns/net", path, None, MS_BIND)
        except BaseException as exc:
            failure.append(exc)

    try:
        _shared_netns_dir()
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except OSError as exc:
        raise NetnsError(f"creating network namespace {path.name} failed: {exc}") from None
    thread = threading.Thread(target=make, name=f"netns-add-{path.name}")
    thread.start()
    thread.join()
    if failure:
        with contextlib.suppress(OSError):
            path.unlink()
        raise NetnsError(f"creating network namespace {path.name} failed: {failure[0]}")


def _remove_namespace(path: Path) -> None:
    """`ip netns del`, in-process: detach the bind mount (ignored if there is none, as ip does)
    and remove the name."""
    with contextlib.suppress(OSError):
        umount_detach(path)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise NetnsError(f"removing network namespace {path.name} failed: {exc}") from None


@dataclass(frozen=True)
class Eth0:
    mac: str  # aa:bb:cc:dd:ee:ff
    address: str  # IPv4 with prefix length, e.g. 192.168.1.23/24
    gateway: str


def _halves(address: str) -> tuple[str, str]:
    """The two subnets one bit longer than `address`'s own (192.168.1.23/24 -> .0/25, .128/25)."""
    net = ipaddress.ip_interface(address).network
    low, high = net.subnets(prefixlen_diff=1)
    return str(low), str(high)


class NetNamespace:
    """A named network namespace with lo, AnyIP routes and the divert rules. Idempotent `delete`."""

    def __init__(self, run_id: str, eth0: Eth0 | None = None) -> None:
        self.name = netns_name(run_id)
        self.path = NETNS_DIR / self.name
        self.eth0 = eth0
        self._created = False

    def create(self) -> None:
        with _creation_lock():
            if self.path.exists():
                raise NetnsError(f"network namespace {self.name} already exists (another run with this id?)")
            _add_namespace(self.path)
        self._created = True
        try:
            self._configure()
        except BaseException:
            self.delete()
            raise

    def _configure(self) -> None:
        # nft (the rules) and ip (links, addresses, routes) touch different kernel state: nft is
        # started first and runs while the peer and the routes are set up.
        nft = self._start_nft()
        try:
            with contextlib.suppress(BrokenPipeError):  # nft failed early: its stderr says why
                assert nft.stdin is not None
                nft.stdin.write(nft_ruleset())  # a few hundred bytes: never fills the pipe
                nft.stdin.flush()
            self._addresses_and_routes()
        finally:
            try:
                _, err = nft.communicate(timeout=30)  # closes its stdin: nft loads the rules
            except subprocess.TimeoutExpired:
                nft.kill()
                nft.wait()
                raise NetnsError("nft -f - did not finish within 30 s") from None
        if nft.returncode != 0:
            raise NetnsError(f"nft -f - failed: {err.strip() or nft.returncode}")

    def _start_nft(self) -> subprocess.Popen[str]:
        """`nft -f -` in the namespace: one process (not `ip netns exec`, which is two), spawned
        by a short-lived thread that joined the namespace first (a child starts in its creator
        thread's namespaces), so no preexec_fn. A preexec_fn fork runs Python's at-fork hooks,
        and this runs beside the main thread's imports: when logging was first imported between
        the hooks before and after that fork, its unpaired lock release printed "cannot release
        un-acquired lock" into the run's stderr."""
        spawned: list[subprocess.Popen[str] | BaseException] = []

        def spawn() -> None:
            try:
                enter_netns(self.path)
                spawned.append(
                    subprocess.Popen(
                        ["nft", "-f", "-"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            except BaseException as exc:
                spawned.append(exc)

        thread = threading.Thread(target=spawn, name=f"nft-{self.name}")
        thread.start()
        thread.join()
        if isinstance(spawned[0], BaseException):
            raise spawned[0]
        return spawned[0]

    def _addresses_and_routes(self) -> None:
        # One `ip -batch` per namespace instead of one `ip` per line: each process costs 5-10 ms,
        # and this runs before every analysis (the family is inferred from each address).
        lines = [
            "link set lo up",
            f"addr add {LOCAL_ADDRESS_V4}/32 dev lo",
            f"addr add {LOCAL_ADDRESS_V6}/128 dev lo nodad",
            "route add local 0.0.0.0/0 dev lo",
            "route add local ::/0 dev lo",
        ]
        if self.eth0 is not None:
            nic, peer = self.eth0, self.name + NIC_SUFFIX
            # The dead end speaks no IPv6 either (no fe80::, no multicast route): disabled in the
            # peer before its eth0 exists, which inherits `default`.
            no_v6 = {f"net.ipv6.conf.{k}.disable_ipv6": "1" for k in ("default", "all")}
            with _creation_lock():
                _add_namespace(NETNS_DIR / peer, no_v6)
            # The pair is made from the peer's side, which brings its own end up in the same
            # process; the other end, with the persona's MAC, lands in our namespace as eth0.
            _run(
                ["ip", "-n", peer, "-batch", "-"],
                stdin=f"link add eth0 type veth peer name eth0 address {nic.mac} netns {self.name}\n"
                "link set eth0 up\n",
            )
            # The kernel merges the local and main tables into one longest-prefix lookup, so
            # eth0's connected /24 would beat `local 0.0.0.0/0` and send LAN destinations to the
            # peer, unanswered and unrecorded. Two local halves, one bit longer, keep them on lo.
            halves = (*_halves(nic.address), *_halves("fe80::/64"))
            lines += [
                f"addr add {nic.address} dev eth0",
                "link set eth0 up",
                f"route add default via {nic.gateway} dev eth0",
                *(f"route add local {half} dev lo table local" for half in halves),
            ]
        self._batch(lines)

    def _batch(self, lines: list[str]) -> None:
        _run(["ip", "-n", self.name, "-batch", "-"], stdin="".join(f"{line}\n" for line in lines))

    def delete(self) -> None:
        """Remove the name. The kernel frees the namespace once no socket or thread refers to it."""
        if self._created:
            _remove_namespace(self.path)
            _remove_namespace(NETNS_DIR / (self.name + NIC_SUFFIX))
        self._created = False

    def nsenter_argv(self) -> list[str]:
        """Prefix for a command that should run inside the namespace (safer than a preexec_fn)."""
        return ["nsenter", f"--net={self.path}", "--"]

    def __enter__(self) -> NetNamespace:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()
