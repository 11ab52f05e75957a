"""Online mode: the allowlist, the CONNECT relay, and the path from inside the namespace.

The "registry" is a loopback echo stub; upstream_overrides points the allowlisted name at it, so
no test ever contacts a real host.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from osptrack.sandbox.fakenet import FakeNetwork
from osptrack.sandbox.proxy import DEFAULT_REGISTRIES, AllowlistProxy

needs_root_net = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nftables and iproute2 (installed by .ci/run)",
)


class EchoStub:
    """A loopback 'registry' that prefixes what it echoes, and counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(b"registry:" + data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def stub() -> Iterator[EchoStub]:
    s = EchoStub()
    yield s
    s.close()


def _connect(proxy: AllowlistProxy, head: bytes) -> tuple[socket.socket, bytes]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(str(proxy.unix_path))
    client.sendall(head)
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = client.recv(4096)
        if not chunk:
            break
        reply += chunk
    return client, reply


def test_allowlist_decisions() -> None:
    proxy = AllowlistProxy(DEFAULT_REGISTRIES)
    assert proxy.check("pypi.org", 443) == (True, "allowlisted registry")
    assert proxy.check("Files.PythonHosted.org.", 443)[0]
    assert proxy.check("registry.npmjs.org", 443)[0]
    for host, port in [
        ("evil.pypi.org", 443),  # no wildcard subdomains
        ("pypi.org.evil.example", 443),  # no suffix tricks
        ("notpypi.org", 443),
        ("151.101.0.223", 443),  # IP literals never pass
        ("pypi.org", 80),
        ("pypi.org", 22),
    ]:
        assert not proxy.check(host, port)[0], (host, port)
    assert not proxy.check(None, None)[0]


def test_relay_to_allowed_registry(stub: EchoStub) -> None:
    with AllowlistProxy(("pypi.org",), upstream_overrides={"pypi.org": ("127.0.0.1", stub.port)}) as proxy:
        assert oct(proxy.unix_path.parent.stat().st_mode & 0o777) == "0o700"
        client, reply = _connect(proxy, b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\nearly")
        assert reply.startswith(b"HTTP/1.1 200 ")
        client.sendall(b"-then-more")
        # The echo of "early" may already have arrived together with the 200 head.
        got = reply.partition(b"\r\n\r\n")[2]
        deadline = time.time() + 5
        while got.replace(b"registry:", b"") != b"early-then-more" and time.time() < deadline:
            got += client.recv(4096)
        assert got.replace(b"registry:", b"") == b"early-then-more"
        client.close()
        assert stub.connections == 1
        (decision,) = proxy.decisions
        assert decision.allowed and decision.host == "pypi.org" and decision.port == 443
        sock_dir = proxy.unix_path.parent
        assert sock_dir.exists()
    assert not sock_dir.exists()


@pytest.mark.parametrize(
    "head",
    [
        b"CONNECT evil.example.com:443 HTTP/1.1\r\n\r\n",
        b"CONNECT pypi.org:80 HTTP/1.1\r\n\r\n",
        b"GET http://pypi.org/simple/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n",
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01garbage\r\n\r\n",
    ],
)
def test_everything_else_is_refused_without_contacting_anyone(stub: EchoStub, head: bytes) -> None:
    called: list[tuple[str, int]] = []

    def connector(host: str, port: int) -> socket.socket:
        called.append((host, port))
        return socket.create_connection((host, port), timeout=5)

    overrides = {"pypi.org": ("127.0.0.1", stub.port), "evil.example.com": ("127.0.0.1", stub.port)}
    with AllowlistProxy(("pypi.org",), connector=connector, upstream_overrides=overrides) as proxy:
        client, reply = _connect(proxy, head)
        assert reply.startswith(b"HTTP/1.1 403 ")
        assert client.recv(100) == b""  # closed after the refusal
        client.close()
        assert called == [] and stub.connections == 0
        assert [d.allowed for d in proxy.decisions] == [False]


def test_upstream_failure_is_a_502_not_a_hang() -> None:
    def refuse(host: str, port: int) -> socket.socket:
        raise ConnectionRefusedError(111, "Connection refused")

    with AllowlistProxy(("pypi.org",), connector=refuse) as proxy:
        client, reply = _connect(proxy, b"CONNECT pypi.org:443 HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 502 ")
        client.close()


@needs_root_net
def test_online_mode_from_inside_the_namespace(stub: EchoStub) -> None:
    with AllowlistProxy(("pypi.org",), upstream_overrides={"pypi.org": ("127.0.0.1", stub.port)}) as proxy:
        run_id = f"o-{uuid.uuid4().hex[:10]}"
        with FakeNetwork(run_id=run_id, online=True, proxy_socket=proxy.unix_path) as net:
            assert net.proxy_url == "http://198.18.0.80:3128"
            net.set_phase("install")
            code = (
                "import socket, sys\n"
                "def tunnel(host):\n"
                "    s = socket.create_connection(('198.18.0.80', 3128), timeout=5)\n"
                "    s.sendall(f'CONNECT {host}:443 HTTP/1.1\\r\\nHost: {host}:443\\r\\n\\r\\n'.encode())\n"
                "    head = s.recv(4096)\n"
                "    return s, head.split(b'\\r\\n')[0].decode()\n"
                "s, status = tunnel('pypi.org')\n"
                # A real ClientHello through the tunnel, as pip would send after the CONNECT.
                "import ssl\n"
                "ctx = ssl.create_default_context(); bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()\n"
                "tls = ctx.wrap_bio(bio_in, bio_out, server_hostname='pypi.org')\n"
                "try:\n    tls.do_handshake()\nexcept ssl.SSLWantReadError:\n    pass\n"
                "hello = bio_out.read()\n"
                "s.sendall(hello)\n"
                "echo = b''\n"
                "while len(echo) < len(hello) + 9:\n    echo += s.recv(65536)\n"
                "print(status, echo == b'registry:' + hello)\n"
                "s.close()\n"
                "s, status = tunnel('evil.example.com')\n"
                "print(status)\n"
                # Without the proxy, a registry name still resolves to a sinkhole and goes nowhere.
                "addr = socket.getaddrinfo('pypi.org', 443, socket.AF_INET)[0][4][0]\n"
                "d = socket.create_connection((addr, 443), timeout=5); d.sendall(b'direct'); d.close()\n"
                "print(addr)\n"
            )
            proc = subprocess.run(
                [sys.executable, "-c", code],
                preexec_fn=net.enter_netns,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
            lines = proc.stdout.splitlines()
            assert lines[0] == "HTTP/1.1 200 Connection established True"
            assert lines[1].startswith("HTTP/1.1 403")
            assert lines[2].startswith("198.18.")
            tcp = [r for r in net.records() if r["kind"] == "tcp"]
        assert stub.connections == 1  # only the allowlisted tunnel reached the "registry"
        via_proxy = [r for r in tcp if (r["dst"], r["dst_port"]) == ("198.18.0.80", 3128)]
        assert {r["http"]["path"] for r in via_proxy} == {"pypi.org:443", "evil.example.com:443"}
        assert all(r["http"]["method"] == "CONNECT" for r in via_proxy)
        assert {r["hostname"] for r in via_proxy} == {"pypi.org", "evil.example.com"}
        assert {r["tls_sni"] for r in via_proxy} == {"pypi.org", None}  # SNI read past the CONNECT head
        direct = [r for r in tcp if r["dst"] == lines[2]]
        assert direct and direct[0]["hostname"] == "pypi.org" and direct[0]["dst_port"] == 443
        assert [d.allowed for d in proxy.decisions] == [True, False]


@needs_root_net
def test_online_network_starts_and_stops_its_own_proxy() -> None:
    with FakeNetwork(
        run_id=f"q-{uuid.uuid4().hex[:10]}", online=True, allowed_registries=DEFAULT_REGISTRIES
    ) as net:
        assert net.proxy is not None and net.proxy.unix_path.exists()
        assert net.proxy.allowed_hosts == frozenset(DEFAULT_REGISTRIES)
        proxy = net.proxy
        sock_dir = proxy.unix_path.parent
    assert not sock_dir.exists()
    assert not net.netns_path.exists()
    offline = FakeNetwork(run_id="unused-offline")
    assert offline.proxy_url is None and offline.proxy_address is None
