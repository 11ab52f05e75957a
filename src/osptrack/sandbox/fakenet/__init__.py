"""The fake network: a DNS responder and TCP/UDP catch-alls inside a loopback-only namespace.

Usage (run.py)::

    with FakeNetwork(run_id="abc123", tokens=baits, routes=registry_routes,
                     static_names={"pkgmirror.internal.lan": "198.18.0.80"}) as net:
        net.set_phase("install")                 # tags every later record
        subprocess.run([*net.nsenter_argv(), "bwrap", ...])   # or preexec_fn=net.enter_netns
        write_jsonl(out / "network.jsonl", net.records())     # settles open flows first
        net.hostnames_for("198.18.1.1")          # -> ["evil.example.com"]
        net.exfiltration()   # find_tokens-style findings over every captured byte, and DNS tunnels
    # on exit (also on exceptions): servers stopped, threads joined, sockets closed, netns deleted

What the sandbox sees (see netns.py for the plumbing):

* `net.resolver_address` (198.18.0.53) is what the sandbox's /etc/resolv.conf should name. Any
  query to port 53 of *any* address (8.8.8.8, 127.0.0.53, ...) reaches the same responder, and
  the record's `server` says which address the client aimed at.
* A queries get a sinkhole from 198.18.0.0/15, one per name (198.18.1.1, 198.18.1.2, ... in order
  of first query), so a later connect to that address maps back to the name (`hostname` field,
  `hostnames_for`). AAAA queries get the same sinkhole embedded in the ULA prefix
  fd5e:1800::/96 (198.18.1.1 <-> fd5e:1800::c612:101) rather than NODATA, so IPv6-first clients
  still connect and are still attributed to the name. Every other type is NOERROR/NODATA.
  DNS over TCP is answered too. Names are logged lower-cased without the trailing dot.
* Reserved names (.invalid, .test, .example, .localhost, .onion) get NXDOMAIN, still logged.
* TCP to any other address/port is accepted and sniffed (responders/sniff.py). TLS is
  intercepted with a leaf from the machine's CA (`net.ca`, ca.py; minted per SNI, cached) and the
  decrypted stream served like a plain one; a client that rejects the certificate is recorded
  as such (`tls.rejected`). HTTP is served by h11 (responders/http.py) with INetSim-style
  answers (answers.py): scripts that write the run's marker (`net.marker`, stages.py), ELF/PE
  stubs, `{}` for APIs, 204 for webhooks and POSTs, HTML otherwise; DoH, WebSocket and CONNECT
  have their own handlers. Every request (line, headers, body) is captured up to
  `capture_bytes` per flow (1 MiB), truncation marked; `served` summarises each response.
  Anything else is read until `idle_timeout` of silence or `max_connection_s`. `bytes` counts
  everything the client sent (decrypted, for intercepted TLS).
* SMTP ports (25, 587, 2525) get a banner and an accept-everything mail server (AUTH and DATA
  accepted, STARTTLS refused), so credentials and message bodies sent by mail are captured.
* UDP to any other address/port is recorded (first 4 KiB) and not answered.
* The package registries (`osptrack.registry`) are a service at 198.18.0.80:80 (and its IPv6 form
  fd5e:1800::c612:50), reached by a `Route` to `responders/registry.py`; `static_names` make the
  fake DNS answer the service's name with that fixed address. Nothing is relayed anywhere: online
  fetches are the registry service's own business, on the host.

Record format: exactly `network.jsonl` in docs/formats.md (`dns`, `tcp`, `udp`), sorted by `t`
(the time the query/connection/datagram arrived). `phase` is None before the first `set_phase`.
A TCP flow is logged when its connection ends, so read `records()` after the phase's processes
have exited (the handlers give up after `idle_timeout`). Floods are bounded: at most
`max_records` records are kept (`net.dropped` counts the rest) and at most `max_connections`
connections are served at once (further ones are logged with `bytes: 0` and closed).
`net.errors` counts packets/connections whose handling raised. run.py may put `dropped` and
`errors` into run.json.

Stale namespaces from a killed run: `osptrack.sandbox.netns.sweep_stale()` (e.g. at batch start).

Layout: `core.py` (namespace, listeners, tproxy, dispatch, records), `protocols.py` (HTTP/TLS
head parsers), `sinkholes.py`, and one module per service under `responders/` behind the small
interface in `responders/base.py` (`Responder.serve(flow)`, chosen by `Route` on the original
destination address/port; `FakeNetwork(routes=[...])` puts extra services ahead of the defaults).
"""

from osptrack.sandbox.fakenet.core import (
    FIRST_BYTES,
    IDLE_ROUND_S,
    RESOLVER_ADDRESS,
    FakeNetwork,
)
from osptrack.sandbox.fakenet.protocols import parse_http_request, parse_tls_sni
from osptrack.sandbox.fakenet.responders.base import (
    MAX_CAPTURE,
    PARSE_WINDOW,
    Capture,
    Flow,
    Responder,
    Route,
)
from osptrack.sandbox.fakenet.responders.smtp import SMTP_PORTS, smtp_reply
from osptrack.sandbox.fakenet.sinkholes import SINKHOLE_NET_V4, SINKHOLE_NET_V6, Sinkholes

__all__ = [
    "FIRST_BYTES",
    "IDLE_ROUND_S",
    "MAX_CAPTURE",
    "PARSE_WINDOW",
    "RESOLVER_ADDRESS",
    "SINKHOLE_NET_V4",
    "SINKHOLE_NET_V6",
    "SMTP_PORTS",
    "Capture",
    "FakeNetwork",
    "Flow",
    "Responder",
    "Route",
    "Sinkholes",
    "parse_http_request",
    "parse_tls_sni",
    "smtp_reply",
]
