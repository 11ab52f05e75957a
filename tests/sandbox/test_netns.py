"""The namespace itself: only lo, AnyIP routes, divert rules, joining, deletion."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from osptrack.errors import BadInput
from osptrack.sandbox.netns import (
    DNS_PORT,
    NETNS_DIR,
    NIC_SUFFIX,
    TCP_CATCHALL_PORT,
    UDP_CATCHALL_PORT,
    Eth0,
    NetNamespace,
    NetnsError,
    enter_netns,
    netns_name,
    nft_ruleset,
    sweep_stale,
)

needs_root_net = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nftables and iproute2 (installed by .ci/run)",
)


def _ip(ns: NetNamespace, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns.name, *args], capture_output=True, text=True, check=True).stdout


def test_run_id_must_be_a_safe_name() -> None:
    assert netns_name("abc-1.2_x") == "osptrack-abc-1.2_x"
    for bad in ("", "../etc", "a b", "x" * 49, "-lead"):
        with pytest.raises(BadInput):
            netns_name(bad)


def test_ruleset_diverts_dns_first_and_stops_after_each_tproxy() -> None:
    rules = [
        line.strip()
        for line in nft_ruleset().splitlines()
        if ("tproxy" in line or "accept" in line) and "hook" not in line
    ]
    # DNS is diverted even to loopback resolvers, so it must come before the loopback exemption.
    dns = next(i for i, r in enumerate(rules) if "dport 53" in r)
    loopback = next(i for i, r in enumerate(rules) if "127.0.0.0/8" in r)
    assert dns < loopback
    assert rules[0] == "ct direction reply accept"
    # tproxy does not end rule evaluation; without accept the catch-all would re-steer DNS.
    assert all(r.endswith("accept") for r in rules)
    assert f"tproxy to :{DNS_PORT} accept" in rules[dns]
    assert any(f"tcp tproxy to :{TCP_CATCHALL_PORT}" in r for r in rules)
    assert any(f"udp tproxy to :{UDP_CATCHALL_PORT}" in r for r in rules)


@needs_root_net
def test_namespace_has_only_lo_anyip_routes_and_rules() -> None:
    with NetNamespace(f"n-{uuid.uuid4().hex[:10]}") as ns:
        assert ns.path.exists()
        links = _ip(ns, "-o", "link").splitlines()
        assert [line.split(":")[1].strip() for line in links] == ["lo"]
        assert "UP" in links[0]
        for dst in ("8.8.8.8", "203.0.113.5", "2001:db8::1", "2606:4700::1111"):
            assert _ip(ns, "route", "get", dst).startswith("local "), dst
        # No default route via any device other than lo.
        assert "via" not in _ip(ns, "route", "show", "table", "all")
        ruleset = subprocess.run(
            ["ip", "netns", "exec", ns.name, "nft", "list", "ruleset"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "tproxy to :" in ruleset and "hook prerouting" in ruleset
        name = ns.name
    assert not ns.path.exists()
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ns.delete()  # idempotent


@needs_root_net
def test_persona_eth0_has_its_mac_and_address_and_leads_nowhere() -> None:
    nic = Eth0("3c:21:9c:12:34:56", "192.168.1.42/24", "192.168.1.1")
    with NetNamespace(f"n-{uuid.uuid4().hex[:10]}", eth0=nic) as ns:
        peer = ns.name + NIC_SUFFIX
        link = _ip(ns, "-o", "link", "show", "eth0")
        assert "3c:21:9c:12:34:56" in link and "state UP" in link and "LOWER_UP" in link
        assert "inet 192.168.1.42/24" in _ip(ns, "-o", "addr", "show", "eth0")
        assert "default via 192.168.1.1 dev eth0" in _ip(ns, "route", "show")
        # The local table still answers every destination on lo, the gateway included.
        for dst in ("192.168.1.1", "8.8.8.8", "192.168.1.200", "fe80::1", "fe80::ffff:1"):
            assert _ip(ns, "route", "get", dst).startswith("local "), dst

        # The peer namespace: eth0's other end and lo (down), no address, no route.
        def peer_ip(*args: str) -> str:
            return subprocess.run(
                ["ip", "-n", peer, *args], capture_output=True, text=True, check=True
            ).stdout

        assert sorted(
            line.split(":")[1].strip().split("@")[0] for line in peer_ip("-o", "link").splitlines()
        ) == [
            "eth0",
            "lo",
        ]
        assert "inet" not in peer_ip("addr")
        assert peer_ip("route", "show", "table", "all").strip() == ""
    assert not ns.path.exists() and not (NETNS_DIR / peer).exists()


@needs_root_net
def test_existing_name_is_refused_without_touching_it() -> None:
    run_id = f"e-{uuid.uuid4().hex[:10]}"
    with NetNamespace(run_id) as first:
        with pytest.raises(NetnsError, match="already exists"):
            NetNamespace(run_id).create()
        assert first.path.exists()


@needs_root_net
def test_enter_netns_moves_only_the_calling_thread() -> None:
    with NetNamespace(f"j-{uuid.uuid4().hex[:10]}") as ns:
        target = os.stat(ns.path).st_ino
        outside = os.stat("/proc/thread-self/ns/net").st_ino
        seen: dict[str, int] = {}

        def join() -> None:
            enter_netns(ns.path)
            seen["inode"] = os.stat("/proc/thread-self/ns/net").st_ino

        thread = threading.Thread(target=join)
        thread.start()
        thread.join()
        assert seen["inode"] == target != outside
        assert os.stat("/proc/thread-self/ns/net").st_ino == outside
        # The nsenter prefix reaches the same namespace.
        out = subprocess.run(
            [*ns.nsenter_argv(), "stat", "-L", "-c", "%i", "/proc/self/ns/net"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert int(out) == target


@needs_root_net
def test_failed_setup_deletes_the_half_made_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    import osptrack.sandbox.netns as netns_mod

    monkeypatch.setattr(netns_mod, "nft_ruleset", lambda *a, **k: "this is not nft syntax\n")
    ns = NetNamespace(f"f-{uuid.uuid4().hex[:10]}")
    with pytest.raises(NetnsError, match="nft"):
        ns.create()
    assert not ns.path.exists()


@needs_root_net
def test_sweep_removes_only_abandoned_namespaces() -> None:
    abandoned = NetNamespace(f"s-{uuid.uuid4().hex[:10]}")
    busy = NetNamespace(f"b-{uuid.uuid4().hex[:10]}")
    abandoned.create()
    busy.create()
    inside, release = threading.Event(), threading.Event()

    def occupant() -> None:
        enter_netns(busy.path)
        inside.set()
        release.wait(30)

    thread = threading.Thread(target=occupant)
    thread.start()
    try:
        assert inside.wait(5)
        # Restricted to our two names: a sweep with min_age 0 must never hit a concurrent run's namespace.
        ours = [abandoned.name, busy.name]
        assert sweep_stale(min_age_s=3600, only=ours) == []  # too young
        assert abandoned.path.exists()
        removed = sweep_stale(min_age_s=0, only=ours)
        assert abandoned.name in removed and busy.name not in removed
        assert not abandoned.path.exists() and busy.path.exists()
    finally:
        release.set()
        thread.join()
        busy.delete()
        abandoned.delete()


@needs_root_net
def test_setup_spawns_three_processes_and_teardown_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """The namespaces are made and removed in-process; only `ip -batch` (twice) and nft run."""
    spawned: list[str] = []
    base = subprocess.Popen.__init__

    def counting(self: subprocess.Popen[str], args: list[str], *a: object, **k: object) -> None:
        spawned.append(" ".join(args[:3]))
        base(self, args, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess.Popen, "__init__", counting)
    nic = Eth0("3c:21:9c:12:34:57", "192.168.1.43/24", "192.168.1.1")
    ns = NetNamespace(f"c-{uuid.uuid4().hex[:10]}", eth0=nic)
    ns.create()
    made = list(spawned)
    ns.delete()
    assert sorted(made) == sorted(["nft -f -", f"ip -n {ns.name}", f"ip -n {ns.name}{NIC_SUFFIX}"])
    assert spawned == made  # deleting spawned nothing
    assert not ns.path.exists() and not (NETNS_DIR / (ns.name + NIC_SUFFIX)).exists()


_forks_with_hooks: list[str] = []
_count_forks = threading.Event()
os.register_at_fork(before=lambda: _count_forks.is_set() and _forks_with_hooks.append("fork"))


@needs_root_net
def test_setup_forks_nothing_that_runs_python_at_fork_hooks() -> None:
    """No preexec_fn fork while the set-up runs beside the main thread's imports: such a fork
    runs the at-fork hooks, and a module that registers its pair (logging) during the fork left
    an unpaired release ("cannot release un-acquired lock") in the run's stderr."""
    nic = Eth0("3c:21:9c:12:34:58", "192.168.1.44/24", "192.168.1.1")
    ns = NetNamespace(f"f-{uuid.uuid4().hex[:10]}", eth0=nic)
    _count_forks.set()
    try:
        ns.create()
    finally:
        _count_forks.clear()
    try:
        ruleset = subprocess.run(
            ["ip", "netns", "exec", ns.name, "nft", "list", "ruleset"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "tproxy to :" in ruleset  # nft still loaded its rules in the run's namespace
        host = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
        assert f"tproxy to :{DNS_PORT}" not in host  # and not in the host's
    finally:
        ns.delete()
    assert _forks_with_hooks == []


@needs_root_net
def test_ipv6_is_off_in_the_peer_only() -> None:
    """The peer's eth0 inherits disable_ipv6 from the peer's defaults; the run's namespace and
    the host keep theirs."""
    nic = Eth0("3c:21:9c:12:34:58", "192.168.1.44/24", "192.168.1.1")
    host_default = Path("/proc/sys/net/ipv6/conf/default/disable_ipv6").read_text()

    def sysctl(name: str, key: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", name, "cat", f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    with NetNamespace(f"v-{uuid.uuid4().hex[:10]}", eth0=nic) as ns:
        assert sysctl(ns.name + NIC_SUFFIX, "eth0") == "1"
        assert sysctl(ns.name, "eth0") == "0"
        assert sysctl(ns.name, "default") == "0"
        assert "inet6 fd5e:1800::1/128" in _ip(ns, "-o", "addr", "show", "lo")
    assert Path("/proc/sys/net/ipv6/conf/default/disable_ipv6").read_text() == host_default


@needs_root_net
def test_a_name_made_in_process_is_visible_to_iproute2_and_other_mount_namespaces() -> None:
    with NetNamespace(f"i-{uuid.uuid4().hex[:10]}") as ns:
        assert ns.name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        # a fresh mount namespace (as `ip netns exec` makes) still reaches it through the name
        out = subprocess.run(
            ["unshare", "--mount", "ip", "-n", ns.name, "-o", "link"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "lo:" in out
        assert os.stat(ns.path).st_ino != os.stat("/proc/self/ns/net").st_ino


@needs_root_net
def test_delete_after_a_concurrent_sweep_took_the_peer_does_not_fail() -> None:
    """Another run's sweep_stale() removes a `.nic` whose main name is gone: deleting the main
    name first left a window in which the peer vanished before its own `ip netns del`."""
    nic = Eth0("3c:21:9c:12:34:59", "192.168.1.45/24", "192.168.1.1")
    ns = NetNamespace(f"r-{uuid.uuid4().hex[:10]}", eth0=nic)
    ns.create()
    peer = NETNS_DIR / (ns.name + NIC_SUFFIX)
    subprocess.run(["ip", "netns", "del", peer.name], check=True)  # what the sweep does
    ns.delete()
    assert not ns.path.exists() and not peer.exists()
