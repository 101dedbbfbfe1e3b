"""uvicorn's HTTP protocol with a read deadline per request and bounded request framing.

uvicorn keeps a connection that trickles its headers or body open forever (measured; see
issue #2): a handful of such clients would hold every connection slot. Here each request
must arrive whole (headers and body) within ``read_timeout`` seconds of its first byte, or
of the connection's opening; otherwise the client gets a 408 and the connection closes.
Between requests, uvicorn's own keep-alive timeout applies.

httptools keeps every header field it is sent, and uvicorn appends chunked trailer fields
to the request's headers (issue #11: one connection streaming trailers took gigabytes, and a
trailer ``X-Forwarded-For`` bypassed the allow-list). Here, whatever the client sends
before anything verifies it stays bounded per request:

- request line, header fields and trailer fields together: at most `MAX_HEADER_BYTES`
  bytes (counted per field as the parser completes it, so one large write counts too,
  and per read for a field that never completes) and `MAX_HEADER_FIELDS` fields;
  past either, a 431 and the connection closes;
- trailer fields are counted, then dropped: they never reach ``scope["headers"]``
  (RFC 9110 section 6.5.1);
- a transfer coding other than plain ``chunked`` gets a 501, malformed framing (a bad
  chunk size, an invalid header) a 400; both close the connection at once;
- an ``Upgrade`` other than WebSocket is ignored (RFC 9110 section 7.8): the request,
  body included, is answered as plain HTTP/1.1;
- and httptools parses every request a read brings, queueing pipelined ones without bound
  while the client reads no answer (memory then grows far faster than the bytes sent):
  a connection with `MAX_PIPELINED` requests waiting loses its queue.

A refusal (a 408 too) never overtakes an answer owed: while an earlier request of the
connection is still being answered, or queued behind one, it waits for that answer and then
closes the connection without a refusal of its own (written at once, it would have gone out
as that request's answer). A refusal about the request whose body is being read, with no
answer owed before it, is written at once; its app sees the client as gone.

A timer per request would cost more than the rest of the protocol's work on the webhook
path, so requests only note their deadline and one sweep per server checks them
(precision: a quarter of the timeout, at most one second).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .framing import (
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_PIPELINED,
    REFUSALS,
    coding_refusal,
)

__all__ = ["MAX_HEADER_BYTES", "MAX_HEADER_FIELDS", "MAX_PIPELINED", "deadline_protocol"]

log = logging.getLogger("receiver.intake")


class _Refused(Exception):
    """Raised in a parser callback to stop httptools; the outcome is in ``_refusal``."""


def deadline_protocol(read_timeout: float) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``read_timeout``."""
    interval = min(1.0, read_timeout / 4)

    class DeadlineProtocol(HttpToolsProtocol):
        _deadline: float | None = None
        _headers_done = False
        _header_bytes = 0  # request line and fields (trailers too) of the request in hand
        _fields = 0
        _codings: list[bytes] | None = None  # Transfer-Encoding values, when sent
        _moved = False  # the read in hand began, completed or carried a request's part
        _stalled = 0  # bytes of consecutive reads that did not (header/trailer bytes)
        _refusal: str | None = None  # outcome of a refusal decided in a parser callback
        _closing_when_idle = False  # refused while an answer was owed: close after it
        _resuming = False  # feeding a fresh parser the framing of the request in hand

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._deadline = self.loop.time() + read_timeout
            state = self.server_state  # shared by the connections of one server
            if not getattr(state, "receiver_sweeping", False):
                state.receiver_sweeping = True  # type: ignore[attr-defined]
                self.loop.call_later(interval, _sweep, self.loop, state.connections)

        def data_received(self, data: bytes) -> None:
            # uvicorn's, with our refusals instead of its plain-text 400.
            self._unset_keepalive_if_required()
            self._moved = False
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                elif self._ignores_upgrade():
                    self._read_past_upgrade(data[exc.args[0] :])
                    return
                else:
                    self._unsupported_upgrade_warning()
            except httptools.HttpParserError as exc:
                refusal, self._refusal = self._refusal, None
                if refusal is None:
                    self._warn(
                        "malformed request (%s): answered 400, connection closed",
                        "bad_request",
                        exc,
                    )
                self._refuse(refusal or "bad_request")
                return
            if self._moved:
                self._stalled = 0
                return
            # A read that neither began, completed nor carried a request: all of it is
            # header or trailer bytes (or chunk framing), possibly of a field that never
            # completes (httptools keeps it whole).
            self._stalled += len(data)
            if self._stalled > MAX_HEADER_BYTES and not self.transport.is_closing():
                self._warn(
                    "request headers over %d bytes: answered 431, connection closed",
                    "headers_too_large",
                    MAX_HEADER_BYTES,
                )
                self._refuse("headers_too_large")

        def on_message_begin(self) -> None:
            if self._resuming:
                return
            super().on_message_begin()
            self._moved = True
            self._headers_done = False
            self._header_bytes = self._fields = 0
            self._codings = None
            self._deadline = self.loop.time() + read_timeout

        def on_url(self, url: bytes) -> None:
            if self._resuming:
                return
            self._header_bytes += len(url)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._stop(
                    "headers_too_large",
                    "request line over %d bytes: answered 431",
                    MAX_HEADER_BYTES,
                )
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._resuming:
                return
            self._fields += 1
            self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
            if self._fields > MAX_HEADER_FIELDS or self._header_bytes > MAX_HEADER_BYTES:
                self._stop(
                    "headers_too_large",
                    "request headers over %d fields or %d bytes: answered 431, connection closed",
                    MAX_HEADER_FIELDS,
                    MAX_HEADER_BYTES,
                )
            if self._headers_done:
                return  # a trailer field: counted above, never kept
            if len(name) == 17 and name.lower() == b"transfer-encoding":
                self._codings = [*(self._codings or ()), value]
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._resuming:
                return
            self._moved = self._headers_done = True
            if self._codings is not None and (refusal := coding_refusal(self._codings)):
                self._stop(refusal, "transfer coding not plain chunked, refused: %r", self._codings)
            if len(self.pipeline) >= MAX_PIPELINED:
                self._stop(
                    "too_many_pipelined",
                    "over %d pipelined requests waiting: the queue is dropped and the"
                    " connection closed once the request in hand is answered",
                    MAX_PIPELINED,
                )
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._moved = True
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._moved = True
            if self._ignores_upgrade():
                return  # httptools skipped the body as upgrade data: not complete yet
            super().on_message_complete()
            self._deadline = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._closing_when_idle and not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            self._refuse("bad_request")

        def _stop(self, outcome: str, message: str, *args: object) -> None:
            self._warn(message, outcome, *args)
            self._refusal = outcome
            raise _Refused  # httptools stops parsing; data_received answers

        def _warn(self, message: str, outcome: str, *args: object) -> None:
            client = self.client[0] if self.client else None
            log.warning(message, *args, extra={"client": client, "outcome": outcome})

        def _refuse(self, outcome: str) -> None:
            """Answer the refusal of ``outcome`` and close, after any answer still owed."""
            if self.transport.is_closing():
                return
            self._deadline = None
            if self._answer_owed():
                self._close_when_answered()
                return
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                # The refusal is about the request being read: its app sees a client gone.
                cycle.disconnected = True
                cycle.message_event.set()
                if cycle.response_started:
                    self.transport.close()
                    return
            self.transport.write(REFUSALS[outcome])
            self.transport.close()

        def expire_if_late(self, now: float) -> None:
            """Answer 408 and close if this request is past its deadline."""
            if self._deadline is None or now < self._deadline or self.transport.is_closing():
                return
            self._deadline = None
            if self._answer_owed():
                self._close_when_answered()  # a 408 now would pass for that answer
                return
            # A 408 only where no response of this request has begun: before its headers
            # were complete (self.cycle is then an answered request's), or before the app
            # started answering.
            if not self._headers_done or not self.cycle.response_started:
                self.transport.write(REFUSALS["request_timeout"])
            self.transport.close()

        def _ignores_upgrade(self) -> bool:
            """Whether the request in hand asks an upgrade we ignore (all but WebSocket)."""
            return (
                self.parser.should_upgrade()
                and not self._should_upgrade()
                and self.scope["method"] != "CONNECT"
            )

        def _read_past_upgrade(self, rest: bytes) -> None:
            """Answer the request in hand as plain HTTP/1.1, reading its body and what follows.

            httptools takes all after the headers as the new protocol's bytes: an ``Upgrade:
            h2c`` webhook (``curl --http2`` on http://) lost its body, a 401. A fresh parser
            gets the request's framing (callbacks ignored until its headers end), then reads
            the body and any later request as usual.
            """
            framing = [
                b"%s: %s\r\n" % field
                for field in self.headers
                if field[0] in (b"content-length", b"transfer-encoding")
            ]
            version = self.parser.get_http_version().encode()
            self.parser = httptools.HttpRequestParser(self)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn
            self._resuming = True
            try:
                self.parser.feed_data(b"POST / HTTP/%s\r\n%s\r\n" % (version, b"".join(framing)))
            finally:
                self._resuming = False
            self.data_received(rest)

        def _answer_owed(self) -> bool:
            """Whether an earlier request of this connection is still being answered."""
            if self.pipeline:
                return True  # requests queue there only behind one being answered
            # self.cycle is the request being read (its body still coming) or, once that
            # is read whole, the last one: unanswered, it is owed its answer.
            cycle = self.cycle
            return cycle is not None and not cycle.more_body and not cycle.response_complete

        def _close_when_answered(self) -> None:
            """Read nothing more, drop the queue; the answer owed goes out, then we close."""
            self.pipeline.clear()
            self._closing_when_idle = True
            self.flow.pause_reading()

    def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        now = loop.time()
        for protocol in list(connections):
            if isinstance(protocol, DeadlineProtocol):
                protocol.expire_if_late(now)
        loop.call_later(interval, _sweep, loop, connections)

    return DeadlineProtocol
