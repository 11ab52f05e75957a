"""Name <-> sinkhole address, one address per name, stable for the run.

A queries get an address from 198.18.0.0/15 (RFC 2544, never routed), one per name in order of
first query (198.18.1.1, 198.18.1.2, ...); AAAA queries get the same address embedded in the ULA
prefix fd5e:1800::/96, so a later connect to either maps back to the name. 198.18.0.0/24 is kept
for the fake network's own services (resolver, registries).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping

SINKHOLE_NET_V4 = ipaddress.IPv4Network("198.18.0.0/15")
SINKHOLE_FIRST = ipaddress.IPv4Address("198.18.1.1")
SINKHOLE_NET_V6 = ipaddress.IPv6Network("fd5e:1800::/96")


class Sinkholes:
    """Name <-> sinkhole address, one address per name, stable for the run. `static` names (the
    fake network's own services, such as the registry) keep the 198.18.0.x address they are given."""

    def __init__(self, static: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, int] = {}
        self._by_index: dict[int, str] = {}
        self._static = {k.lower(): v for k, v in (static or {}).items()}
        self._static_rev = {v: k for k, v in self._static.items()}

    def v4_for(self, name: str) -> str | None:
        if name in self._static:
            return self._static[name]
        with self._lock:
            index = self._by_name.get(name)
            if index is None:
                index = len(self._by_name)
                if int(SINKHOLE_FIRST) + index > int(SINKHOLE_NET_V4.broadcast_address):
                    return None  # exhausted: answer NODATA rather than reuse an address
                self._by_name[name] = index
                self._by_index[index] = name
        return str(ipaddress.IPv4Address(int(SINKHOLE_FIRST) + index))

    def v6_for(self, name: str) -> str | None:
        v4 = self.v4_for(name)
        if v4 is None:
            return None
        return str(
            ipaddress.IPv6Address(int(SINKHOLE_NET_V6.network_address) | int(ipaddress.IPv4Address(v4)))
        )

    def names_for(self, ip: str) -> list[str]:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return []
        if isinstance(addr, ipaddress.IPv6Address):
            if addr not in SINKHOLE_NET_V6:
                return []
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if str(addr) in self._static_rev:
            return [self._static_rev[str(addr)]]
        index = int(addr) - int(SINKHOLE_FIRST)
        with self._lock:
            name = self._by_index.get(index)
        return [name] if name is not None else []
