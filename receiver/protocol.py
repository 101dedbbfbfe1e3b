"""uvicorn's HTTP protocol with a read deadline per request.

uvicorn keeps a connection that trickles its headers or body open forever (measured; see
issue #2): a handful of such clients would hold every connection slot. Here each request
must arrive whole (headers and body) within ``read_timeout`` seconds of its first byte, or
of the connection's opening; otherwise the client gets a 408 and the connection closes.
Between requests, uvicorn's own keep-alive timeout applies.

A timer per request would cost more than the rest of the protocol's work on the webhook
path, so requests only note their deadline and one sweep per server checks them
(precision: a quarter of the timeout, at most one second).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: 28\r\nconnection: close\r\n\r\n"
    b'{"error": "request_timeout"}'
)


def deadline_protocol(read_timeout: float) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``read_timeout``."""
    interval = min(1.0, read_timeout / 4)

    class DeadlineProtocol(HttpToolsProtocol):
        _deadline: float | None = None
        _headers_done = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._deadline = self.loop.time() + read_timeout
            state = self.server_state  # shared by the connections of one server
            if not getattr(state, "receiver_sweeping", False):
                state.receiver_sweeping = True  # type: ignore[attr-defined]
                self.loop.call_later(interval, _sweep, self.loop, state.connections)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._headers_done = False
            self._deadline = self.loop.time() + read_timeout

        def on_headers_complete(self) -> None:
            self._headers_done = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._deadline = None

        def expire_if_late(self, now: float) -> None:
            """Answer 408 and close if this request is past its deadline."""
            if self._deadline is None or now < self._deadline or self.transport.is_closing():
                return
            self._deadline = None
            # A 408 only where no response of this request has begun: before its headers
            # were complete (self.cycle may be the previous request's), or before the app
            # started answering.
            if not self._headers_done or not self.cycle.response_started:
                self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        now = loop.time()
        for protocol in list(connections):
            if isinstance(protocol, DeadlineProtocol):
                protocol.expire_if_late(now)
        loop.call_later(interval, _sweep, loop, connections)

    return DeadlineProtocol
