"""The DNS responder: every query logged, A/AAAA answered with the name's sinkhole.

Over UDP the core calls `answer()` per datagram; over TCP `serve()` answers length-prefixed
queries until the client goes quiet. Names are logged lower-cased without the trailing dot. Every
type other than A/AAAA is NOERROR/NODATA.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from osptrack.sandbox.fakenet.responders.base import Flow
from osptrack.sandbox.fakenet.sinkholes import Sinkholes

DNS_TTL = 60
RESERVED_TLDS = frozenset({"invalid", "test", "example", "localhost", "onion"})


def is_reserved(qname: str) -> bool:
    """A name no real resolver answers: its last label is a reserved top-level name."""
    return qname.rsplit(".", 1)[-1] in RESERVED_TLDS


AddRecord = Callable[[dict[str, Any]], None]


class DnsResponder:
    name = "dns"

    def __init__(self, sinkholes: Sinkholes, add: AddRecord) -> None:
        self.sinkholes = sinkholes
        self._add = add

    def answer(
        self, data: bytes, server: str, server_port: int, t: float, phase: str | None, via: str | None = None
    ) -> bytes | None:
        """The reply to one DNS message (None if it is not a query), logging each question."""
        # dnslib loads with the first query, inside the phase, not before it (~5-10 ms)
        from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises its own DNSError and struct errors on junk
            return None
        if request.header.qr or not request.questions:
            return None
        reply = request.reply()
        for question in request.questions:
            qname = str(question.qname).rstrip(".").lower()
            qtype = QTYPE.get(question.qtype, f"TYPE{question.qtype}")
            answer: list[str] = []
            address = None
            extra: dict[str, str] = {"via": via} if via else {}
            if is_reserved(qname):
                reply.header.rcode = RCODE.NXDOMAIN
                extra["rcode"] = "NXDOMAIN"
            elif question.qtype == QTYPE.A:
                address = self.sinkholes.v4_for(qname)
                if address:
                    reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(address), ttl=DNS_TTL))
            elif question.qtype == QTYPE.AAAA:
                address = self.sinkholes.v6_for(qname)
                if address:
                    reply.add_answer(RR(question.qname, QTYPE.AAAA, rdata=AAAA(address), ttl=DNS_TTL))
            if address:
                answer.append(address)
            self._add({"t": t, "phase": phase, "kind": "dns", "qname": qname, "qtype": str(qtype),
                       "server": server, "server_port": server_port, "answer": answer, **extra})  # fmt: skip
        return bytes(reply.pack())

    def serve(self, flow: Flow) -> None:
        """DNS over TCP. Logged as dns records; only a stream that was not DNS becomes a tcp record."""
        flow.record = not self._over_tcp(flow) and flow.cap.total > 0

    def _over_tcp(self, flow: Flow) -> bool:
        buf = bytearray()
        for chunk in flow.incoming():
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                size = int.from_bytes(buf[:2], "big")
                message, buf = bytes(buf[2 : 2 + size]), buf[2 + size :]
                reply = self.answer(message, flow.dst, flow.dst_port, flow.t, flow.phase)
                if reply is None:
                    return False
                flow.conn.sendall(len(reply).to_bytes(2, "big") + reply)
        return not buf
