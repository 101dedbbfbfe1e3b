"""The webhook a lost status would have been: what a backfilled row is stored as.

A row becomes the body of a ``delivery-status`` webhook, so it goes through intake's own
reading (`incoming_from`): the same dedup key as the webhook MTA failed to deliver (a
later real one is its duplicate, an earlier one makes it a duplicate), the same
forward-only message state, the same dispatch. What the webhook would not say sits under
``_receiver`` (`BACKFILL_MARK`): the source, MTA's word, when MTA recorded the status,
and the row as MTA answered it.
"""

from __future__ import annotations

import json
from typing import Any

from ..mta.events import BACKFILL_MARK, DEFAULT_ACCOUNT, DELIVERY_STATUS, account_key
from ..store.records import Incoming
from ..web.incoming import incoming_from
from .rows import DeliveryRow

__all__ = ["NO_SECRET", "incoming", "twin_body"]

NO_SECRET = -1
"""``secret_index`` of a backfilled event: no webhook secret signed it."""


def twin_body(row: DeliveryRow, fallback_at: float) -> bytes:
    """The ``delivery-status`` body for ``row``; ``fallback_at`` dates a row without a date."""
    body: dict[str, Any] = {"type": DELIVERY_STATUS, "messageId": row.message_id}
    if row.phone is not None:
        body["destinationNumber"] = row.phone
    if row.status is not None:
        body["status"] = row.status
    if row.external_id is not None:
        body["externalId"] = row.external_id
    body[BACKFILL_MARK] = {
        "source": "backfill",
        "mtaStatus": row.word,
        "occurredAt": row.at if row.at is not None else fallback_at,
        "row": dict(row.raw),
    }
    return json.dumps(body, separators=(",", ":"), default=str).encode("utf-8")


def incoming(
    row: DeliveryRow,
    now: float,
    fallback_at: float,
    country: str,
    account: str = DEFAULT_ACCOUNT,
) -> Incoming:
    """What the store commits for ``row``, read back from ``account``.

    With a code, its dedup key is the webhook's (``ds:<message>:<code>:<recipient>``).
    A word without a code gets ``ds:<message>:<word>:<recipient>``: stable from run to
    run (the raw row, which may change, is left out of it).
    """
    item = incoming_from(
        twin_body(row, fallback_at), now, NO_SECRET, DELIVERY_STATUS, country, account
    )
    if row.status is None:
        recipient = f":{item.phone}" if item.phone else ""
        key = f"ds:{row.message_id}:{row.word}{recipient}"
        item = item._replace(dedup_key=account_key(account, key))
    return item
