"""An authentic webhook body as the store commits it: its identity, or quarantine.

The webhook path (intake.py) and the backfill (receiver/backfill/) build their records
here, so a status read back from MTA gets exactly the dedup key of the webhook it stands for.
"""

from __future__ import annotations

import hashlib

from ..errors import PayloadError
from ..mta.events import DEFAULT_ACCOUNT, UNKNOWN, account_key, dedup_key, identify
from ..mta.payload import parse
from ..mta.statuses import rank
from ..store import QUARANTINED, Incoming


def incoming_from(
    body: bytes,
    received_at: float,
    secret_index: int,
    hinted: str | None = None,
    country: str = "1",
    account: str = DEFAULT_ACCOUNT,
) -> Incoming:
    """What the store commits for an authentic body of ``account``: its identity, or
    quarantine."""
    try:
        payload = parse(body)
    except PayloadError as exc:
        return Incoming(
            dedup_key=account_key(account, f"q:{hashlib.sha256(body).hexdigest()}"),
            type=hinted or UNKNOWN,
            name="quarantined",
            received_at=received_at,
            secret_index=secret_index,
            body=body,
            state=QUARANTINED,
            error=exc.reason,
            account=account,
        )
    event = identify(payload, hinted, country)
    return Incoming(
        dedup_key=account_key(account, dedup_key(event, body)),
        type=event.type,
        name=event.name,
        received_at=received_at,
        secret_index=secret_index,
        body=body,
        message_id=event.message_id,
        status=event.status,
        status_rank=rank(event.status),
        external_id=event.external_id,
        phone=event.phone,
        sender_name=event.sender_name,
        account=account,
    )
