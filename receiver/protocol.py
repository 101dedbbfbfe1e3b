"""uvicorn's HTTP protocol with a read deadline per request.

uvicorn keeps a connection that trickles its headers or body open forever (measured; see
issue #2): a handful of such clients would hold every connection slot. Here each request
must arrive whole (headers and body) within ``read_timeout`` seconds of its first byte, or
of the connection's opening; otherwise the client gets a 408 and the connection closes.
Between requests, uvicorn's own keep-alive timeout applies.

httptools keeps every header byte it is sent (measured: one connection streaming a header
grew the process by ~57 MB in 3 s): a request line and headers longer than
`MAX_HEADER_BYTES` get a 431 and the connection closes. And it parses every request a
read brings, queueing pipelined ones without bound while the client reads no answer
(measured: ~600 MB for 15 MB of pipelined ``GET /healthz``): a connection with
`MAX_PIPELINED` requests waiting loses its queue. Either refusal, while an earlier request
of the connection is still being answered, waits for that answer and then closes the
connection (written at once, it would have gone out as that request's answer).

A timer per request would cost more than the rest of the protocol's work on the webhook
path, so requests only note their deadline and one sweep per server checks them
(precision: a quarter of the timeout, at most one second).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: 28\r\nconnection: close\r\n\r\n"
    b'{"error": "request_timeout"}'
)
_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: 30\r\nconnection: close\r\n\r\n"
    b'{"error": "headers_too_large"}'
)
MAX_HEADER_BYTES = 65_536
"""The request line and headers of one request, counted over the reads that neither begin
it nor complete its headers (so two reads, at most 250 KB each with uvloop, may come on
top)."""

MAX_PIPELINED = 32
"""Requests of one connection queued behind the one being answered (MTA and reverse
proxies send one at a time)."""

log = logging.getLogger("receiver.intake")


class _TooManyPipelined(Exception):
    """Raised in the parser's callback: httptools stops parsing and uvicorn calls
    `send_400_response`, which drops the queue when an answer is still owed."""


def deadline_protocol(read_timeout: float) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``read_timeout``."""
    interval = min(1.0, read_timeout / 4)

    class DeadlineProtocol(HttpToolsProtocol):
        _deadline: float | None = None
        _headers_done = False
        _header_bytes: int | None = None  # read while a request's headers are incomplete
        _completed = 0  # requests whose headers were complete
        _closing_when_idle = False  # refused while an answer was owed: close after it

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._deadline = self.loop.time() + read_timeout
            state = self.server_state  # shared by the connections of one server
            if not getattr(state, "receiver_sweeping", False):
                state.receiver_sweeping = True  # type: ignore[attr-defined]
                self.loop.call_later(interval, _sweep, self.loop, state.connections)

        def data_received(self, data: bytes) -> None:
            # Counted: a read that began and ended within one request's headers (all of
            # it is header bytes). The read that begins a request, and the one that
            # completes its headers (it may carry the body), are not: one read each,
            # bounded. Reads of bodies and of whole requests cost nothing here.
            counting, completed = self._header_bytes is not None, self._completed
            super().data_received(data)
            if counting and self._header_bytes is not None and self._completed == completed:
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES:
                    self._refuse_headers()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._headers_done = False
            self._header_bytes = 0
            self._deadline = self.loop.time() + read_timeout

        def on_headers_complete(self) -> None:
            self._headers_done = True
            self._header_bytes = None
            self._completed += 1
            if len(self.pipeline) >= MAX_PIPELINED:
                log.warning(
                    "over %d pipelined requests waiting: the queue is dropped and the"
                    " connection closed once the request in hand is answered",
                    MAX_PIPELINED,
                    extra={"client": self._client(), "outcome": "too_many_pipelined"},
                )
                raise _TooManyPipelined  # stops the parser; uvicorn calls send_400_response
            super().on_headers_complete()

        def send_400_response(self, msg: str) -> None:
            if self._answer_owed():
                self._close_when_idle()
            else:
                super().send_400_response(msg)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._closing_when_idle and not self.transport.is_closing():
                self.transport.close()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._deadline = None

        def _refuse_headers(self) -> None:
            if self.transport.is_closing():
                return
            log.warning(
                "request headers over %d bytes: answered 431, connection closed",
                MAX_HEADER_BYTES,
                extra={"client": self._client(), "outcome": "headers_too_large"},
            )
            self._deadline = self._header_bytes = None
            if self._answer_owed():
                self._close_when_idle()
                return
            self.transport.write(_TOO_LARGE_RESPONSE)
            self.transport.close()

        def _answer_owed(self) -> bool:
            """Whether a request read earlier is still being answered: a refusal written
            now would come first, as that request's answer."""
            return self.cycle is not None and not self.cycle.response_complete

        def _close_when_idle(self) -> None:
            # Read nothing more, drop the queue; the answer owed goes out, then we close.
            self.pipeline.clear()
            self._closing_when_idle = True
            self.flow.pause_reading()

        def _client(self) -> str | None:
            return self.client[0] if self.client else None

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
