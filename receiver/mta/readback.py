"""Reading a sent message back from MTA: its text, and whether it reached a recipient.

Provisional readings of MTA's docs (docs/mta.md, "Reading back"): ``GET
/sent-messages/{outboundId}`` answers ``data`` = ``{id, recipients, message, url}``, and
that ``outboundId`` is the webhook's ``messageId`` is implied, not stated, so an answer
whose ``data.id`` is not the id asked for is not used. ``/delivery-report``'s fields are
undocumented: it is read tolerantly, and any shape it cannot read changes nothing.
These GETs fall under MTA's general limit (30 per minute): texts are cached, reads are
spread by a small limiter of their own: a text read waits for a slot (without it the
resend cannot go), a delivery report is skipped when none is free.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from .errors import MTAError, MTARejected
from .phones import e164
from .ratelimit import Rate, SlidingWindowLimiter

log = logging.getLogger("receiver.mta")

READS_PER_MINUTE = 20
"""Our share of MTA's 30/min general limit (webhook commands use the rest)."""
CACHE_SIZE = 1000
_NUMBER_KEYS = (
    "number",
    "phoneNumber",
    "phone",
    "recipient",
    "to",
    "destinationNumber",
    "subscriber",
    "subscriberNumber",
)
_STATUS_KEYS = ("status", "statusCode", "deliveryStatus", "state")
_ROW_KEYS = ("rows", "recipients", "deliveries", "report", "items", "results")


class Reader(Protocol):
    """What read-back needs of the client: one GET answering MTA's ``data`` object."""

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One API call; the answer's ``data`` object."""
        ...


class ReadBack:
    """Cached, rate-spread reads of sent messages (one per outbox)."""

    def __init__(
        self,
        client: Reader,
        *,
        country: str = "1",
        per_minute: int = READS_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.country = country
        # No margin: MTA's window is 60 s and read-back keeps to 20 of its 30 reads.
        self.limiter = SlidingWindowLimiter(
            Rate(per_minute, 60.0), clock=clock, sleep=sleep, margin=0.0
        )
        self._texts: OrderedDict[str, str | None] = OrderedDict()

    async def _get(self, path: str, *, unavailable_raises: bool = False) -> dict[str, Any] | None:
        try:
            return await self.client.request("GET", path)
        except MTARejected as exc:  # 404, 400: MTA has nothing for us there
            log.info("MTA read-back GET /%s: %s", path, exc)
            return None
        except MTAError as exc:  # unreachable or failing: nothing learnt, for now
            log.info("MTA read-back GET /%s: %s", path, exc)
            if unavailable_raises:
                raise
            return None

    async def text(self, message_id: str) -> str | None:
        """The text MTA holds for ``message_id``, or None (unknown or unreadable: the
        resend is then skipped as ``content_unknown``, as without read-back). An MTA that
        cannot answer now raises (nothing cached): the outbox tries the resend later
        instead of giving it up."""
        if message_id in self._texts:
            return self._texts[message_id]
        if not message_id.isdigit():
            return None
        await self.limiter.acquire()
        data = await self._get(f"sent-messages/{message_id}", unavailable_raises=True)
        text = None
        if data is not None:
            if str(data.get("id")) != message_id:
                log.warning(
                    "MTA read-back: /sent-messages/%s answered id %r; not used",
                    message_id,
                    data.get("id"),
                )
            elif isinstance(data.get("message"), str) and data["message"]:
                text = data["message"]
        log.info("MTA read-back: text of %s %s", message_id, "found" if text else "unknown")
        self._texts[message_id] = text
        if len(self._texts) > CACHE_SIZE:
            self._texts.popitem(last=False)
        return text

    async def delivered(self, message_id: str, phone: str) -> bool:
        """Whether MTA's delivery report says ``message_id`` reached ``phone``; False when
        it says otherwise, cannot be read, or no read slot is free."""
        if not message_id.isdigit() or not self.limiter.try_acquire():
            return False
        data = await self._get(f"sent-messages/{message_id}/delivery-report")
        if data is None:
            return False
        wanted = e164(phone, self.country)
        rows = list(_rows(data))
        found = [_status(row) for row in rows if _number(row, self.country) == wanted]
        log.info(
            "MTA read-back: delivery report of %s: %d readable row(s), recipient's: %s",
            message_id,
            len(rows),
            ", ".join(str(s) for s in found) or "none",
        )
        return "delivered" in found


def _rows(data: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for key in _ROW_KEYS:
        value = data.get(key)
        if isinstance(value, list):
            return [row for row in value if isinstance(row, dict)]
    return [data] if any(k in data for k in _NUMBER_KEYS) else []


def _number(row: dict[str, Any], country: str) -> str | None:
    for key in _NUMBER_KEYS:
        value = row.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return e164(str(value), country)
    return None


def _status(row: dict[str, Any]) -> str | None:
    """``delivered`` for MTA's code 4 or the word; the value as text otherwise."""
    for key in _STATUS_KEYS:
        value = row.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return "delivered" if int(value) == 4 else str(value)
        if isinstance(value, str):
            return value.strip().lower()
    return None
