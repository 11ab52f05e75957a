"""The package registries of the fake network (osptrack.registry's service), by destination address.

pip and npm are configured to use `REGISTRY_HOST`, which the fake DNS answers with
`REGISTRY_ADDRESS`; every connection there is served by the registry's HTTP handler, which feeds
what the client sent into the flow's capture, so the flow is recorded like any other.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from osptrack.sandbox.fakenet.responders.base import Flow, Route
from osptrack.sandbox.fakenet.sinkholes import SINKHOLE_NET_V6

Handler = Callable[[socket.socket, Callable[[bytes], None]], None]


class RegistryResponder:
    name = "registry"

    def __init__(self, handle: Handler) -> None:
        self.handle = handle

    def serve(self, flow: Flow) -> None:
        flow.fields["service"] = "registry"
        self.handle(flow.conn, flow.cap.feed)


def v6_of(v4: str) -> str:
    """The IPv6 form the fake DNS gives an IPv4 address (embedded in fd5e:1800::/96)."""
    return str(ipaddress.IPv6Address(int(SINKHOLE_NET_V6.network_address) | int(ipaddress.IPv4Address(v4))))


def registry_routes(handle: Handler, address: str, port: int) -> list[Route]:
    """Routes for the service on `address:port`, over IPv4 and IPv6."""
    responder = RegistryResponder(handle)
    return [Route(responder, address=a, ports=frozenset({port})) for a in (address, v6_of(address))]
