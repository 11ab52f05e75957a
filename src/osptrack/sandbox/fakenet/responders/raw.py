"""The raw TCP catch-all: keep the connection open and take whatever comes until silence."""

from __future__ import annotations

from osptrack.sandbox.fakenet.responders.base import Flow


class RawResponder:
    name = "raw"

    def serve(self, flow: Flow) -> None:
        for _chunk in flow.incoming():
            pass  # captured by incoming(); a silent server makes the client show what it meant to send
