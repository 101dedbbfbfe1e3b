"""The webhook path's raw ASGI pieces (receiver/web/intake.py): every answer it gives,
by outcome, and reading a body within a limit."""

from __future__ import annotations

from starlette.types import Receive, Send

# Every answer of the webhook path, decided here and only here.
STATUS = {
    "accepted": 200,  # committed: MTA may forget it
    "duplicate": 200,  # we already hold it: MTA must stop retrying, not alert
    # Authentic but unreadable, kept in quarantine: a non-200 would make MTA retry the
    # same bytes and e-mail failure alerts (docs/mta.md, "Webhooks MTA sends to us").
    "quarantined": 200,
    "missing_signature": 401,
    "malformed_signature": 401,
    "bad_signature": 401,
    # RECEIVER_WEBHOOK_ALLOW_NETWORKS is set and the client (after trusted proxy headers)
    # is outside it; checked before anything is read.
    "source_not_allowed": 403,
    # No account at this path (an unknown name, or /webhooks/mta with only an accounts
    # file): answered before reading the body, then closed, like a 413.
    "unknown_account": 404,
    "method_not_allowed": 405,
    "too_large": 413,  # refused before reading past the limit
    "store_unavailable": 503,  # any store failure, not committed; Retry-After: 5
}


UNREAD = frozenset({"too_large", "unknown_account"})


class ClientGone(Exception):
    """The client disconnected before sending the whole body."""


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # nothing was acknowledged: nothing to keep
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def answer(
    send: Send,
    outcome: str,
    *,
    event_id: int | None = None,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer with the status of ``outcome``.

    Success answers have no body: the outcome and event id travel in headers, so uvicorn
    writes the whole answer in one syscall instead of two (a large share of the path's
    CPU; MTA reads only the status). Refusals carry a small JSON body.
    """
    status = STATUS[outcome]
    headers = [(b"x-receiver-outcome", outcome.encode())]
    if event_id is not None:
        headers.append((b"x-receiver-event-id", b"%d" % event_id))
    body = b""
    if status >= 400:
        body = b'{"error": "' + outcome.encode()
        body += b'"}' if event_id is None else b'", "event_id": %d}' % event_id
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", b"%d" % len(body)))
    headers += extra or ()
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
