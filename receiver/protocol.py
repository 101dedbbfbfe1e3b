"""uvicorn's HTTP protocol with a read deadline per request.

uvicorn keeps a connection that trickles its headers or body open forever (measured; see
issue #2): a handful of such clients would hold every connection slot. Here each request
must arrive whole (headers and body) within ``read_timeout`` seconds of its first byte, or
of the connection's opening; otherwise the client gets a 408 and the connection closes.
Between requests, uvicorn's own keep-alive timeout applies.
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

    class DeadlineProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _headers_done = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._headers_done = False
            self._arm()

        def on_headers_complete(self) -> None:
            self._headers_done = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(read_timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            # A 408 only where no response of this request has begun: before its headers
            # were complete (self.cycle may be the previous request's), or before the app
            # started answering.
            if not self._headers_done or not self.cycle.response_started:
                self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    return DeadlineProtocol
