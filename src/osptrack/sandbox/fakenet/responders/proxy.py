"""Online mode: relay the connection byte for byte to the host-side `AllowlistProxy` (proxy.py)
over its pathname unix socket -- the osptrack process straddles both namespaces."""

from __future__ import annotations

import socket
from pathlib import Path

from osptrack.sandbox.fakenet.responders.base import Flow
from osptrack.sandbox.proxy import relay


class ProxyRelayResponder:
    name = "proxy"

    def __init__(self, unix_path: Path, idle_timeout: float) -> None:
        self.unix_path = unix_path
        self.idle_timeout = idle_timeout

    def serve(self, flow: Flow) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        flow.net.track(upstream)
        try:
            upstream.connect(str(self.unix_path))
            relay(flow.conn, upstream, flow.net.stop, self.idle_timeout, on_a_data=flow.cap.feed)
        finally:
            flow.net.untrack(upstream)
            upstream.close()
