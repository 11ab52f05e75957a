"""An accept-everything SMTP server, so credentials and message bodies sent by mail are captured.

SMTP is server-speaks-first: without a banner a client never sends what it came to send. AUTH and
DATA are accepted; STARTTLS is refused so the conversation stays readable.
"""

from __future__ import annotations

from typing import Any

from osptrack.sandbox.fakenet.responders.base import PARSE_WINDOW, Flow

SMTP_PORTS = frozenset({25, 587, 2525})


def smtp_reply(line: bytes, state: str) -> tuple[bytes, str]:
    """(reply, next state) of an accept-everything SMTP server; state is "cmd", "data",
    "auth-user", "auth-pass" or "auth-plain". Credentials and DATA are accepted so they get sent."""
    if state == "data":
        return (b"250 2.0.0 queued\r\n", "cmd") if line.rstrip(b"\r\n") == b"." else (b"", "data")
    if state == "auth-user":
        return b"334 UGFzc3dvcmQ6\r\n", "auth-pass"
    if state in ("auth-pass", "auth-plain"):
        return b"235 2.7.0 authenticated\r\n", "cmd"
    words = line.strip().split()
    verb = words[0].upper() if words else b""
    if verb in (b"EHLO", b"HELO"):
        return b"250-mail.example\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n", "cmd"
    if verb == b"AUTH":
        mech = words[1].upper() if len(words) > 1 else b""
        if mech == b"LOGIN":
            return (
                (b"334 UGFzc3dvcmQ6\r\n", "auth-pass")
                if len(words) > 2
                else (b"334 VXNlcm5hbWU6\r\n", "auth-user")
            )
        if mech == b"PLAIN" and len(words) == 2:
            return b"334 \r\n", "auth-plain"
        return b"235 2.7.0 authenticated\r\n", "cmd"
    if verb == b"DATA":
        return b"354 end data with <CR><LF>.<CR><LF>\r\n", "data"
    if verb == b"QUIT":
        return b"221 2.0.0 bye\r\n", "quit"
    if verb == b"STARTTLS":
        return b"454 4.7.0 TLS not available\r\n", "cmd"
    return b"250 2.0.0 ok\r\n", "cmd"


class SmtpResponder:
    name = "smtp"

    def serve(self, flow: Flow) -> None:
        """Play an accepting mail server until QUIT or silence."""
        conn = flow.conn
        banner = b"220 mail.example ESMTP\r\n"
        conn.sendall(banner)
        summary: dict[str, Any] = {
            "status": 220,
            "kind": "smtp",
            "content_type": None,
            "bytes": len(banner),
            "replies": 1,
        }
        flow.fields["served"] = [summary]
        pending = b""
        state = "cmd"
        for chunk in flow.incoming():
            pending += chunk
            replies = b""
            while b"\n" in pending and state != "quit":
                line, pending = pending.split(b"\n", 1)
                reply, state = smtp_reply(line + b"\n", state)
                replies += reply
            pending = pending[-PARSE_WINDOW:]  # a newline-free flood must not grow without bound
            if replies:
                conn.sendall(replies)
                summary["bytes"] += len(replies)
                summary["replies"] += replies.count(b"\r\n")
            if state == "quit":
                break
