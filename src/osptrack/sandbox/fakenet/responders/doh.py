"""DNS over HTTPS, answered as DNS is: the same sinkholes, and every question logged as a dns record.

Recognised forms (RFC 8484 and the JSON APIs of the public resolvers):
- `POST` with `Content-Type: application/dns-message` (the body is the DNS message);
- `GET ...?dns=<base64url>` (the DNS message, unpadded base64url);
- `GET /resolve?name=...&type=...` or any `?name=` with `Accept: application/dns-json` (JSON API).
The dns records of DoH questions carry `"via": "doh"`; `server` is the address the client reached.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from collections.abc import Mapping

from dnslib import QTYPE, DNSRecord

from osptrack.sandbox.fakenet.answers import Answer
from osptrack.sandbox.fakenet.responders.base import Flow
from osptrack.sandbox.fakenet.responders.dns import DnsResponder

DNS_MESSAGE = "application/dns-message"
DNS_JSON = "application/dns-json"


class DohHandler:
    def __init__(self, dns: DnsResponder) -> None:
        self.dns = dns

    def answer(
        self, flow: Flow, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Answer | None:
        """The DoH answer, or None when the request is not DNS over HTTPS."""
        split = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(split.query)
        if method == "POST" and headers.get("content-type", "").lower().startswith(DNS_MESSAGE):
            return self._wire(flow, body)
        if method == "GET" and "dns" in query:
            try:
                message = base64.urlsafe_b64decode(query["dns"][0] + "=" * (-len(query["dns"][0]) % 4))
            except (binascii.Error, ValueError):
                return Answer(400, "doh", b"", None, {"error": "bad dns parameter"})
            return self._wire(flow, message)
        if (
            method == "GET"
            and "name" in query
            and (split.path.endswith("/resolve") or DNS_JSON in headers.get("accept", ""))
        ):
            return self._json(flow, query["name"][0], (query.get("type") or ["A"])[0])
        return None

    def _wire(self, flow: Flow, message: bytes) -> Answer:
        reply = self.dns.answer(message, flow.dst, flow.dst_port, flow.t, flow.phase, via="doh")
        if reply is None:
            return Answer(400, "doh", b"", None, {"error": "not a DNS query"})
        return Answer(200, "doh", reply, DNS_MESSAGE)

    def _json(self, flow: Flow, name: str, qtype: str) -> Answer:
        qtype = qtype.upper() if not qtype.isdigit() else str(QTYPE.get(int(qtype), "A"))
        try:
            message = DNSRecord.question(
                name, qtype if qtype in ("A", "AAAA", "TXT", "MX", "CNAME", "NS") else "A"
            ).pack()
        except Exception:  # dnslib rejects labels over 63 bytes and the like
            return Answer(400, "doh", b"", None, {"error": "bad name"})
        reply = self.dns.answer(message, flow.dst, flow.dst_port, flow.t, flow.phase, via="doh")
        parsed = DNSRecord.parse(reply) if reply else None
        doc = {
            "Status": parsed.header.rcode if parsed else 2,
            "TC": False, "RD": True, "RA": True, "AD": False, "CD": False,
            "Question": [{"name": name.rstrip(".") + ".", "type": int(getattr(QTYPE, qtype, 1))}],
            "Answer": [{"name": str(rr.rname), "type": rr.rtype, "TTL": rr.ttl, "data": str(rr.rdata)}
                       for rr in (parsed.rr if parsed else [])],
        }  # fmt: skip
        return Answer(200, "doh", json.dumps(doc).encode(), DNS_JSON)
