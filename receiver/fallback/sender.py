"""How one account's resends go out (the outbox has one `Sender` per account with an API
key and the fallback on: receiver/fallback/wiring.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..mta import MTAClient
from ..mta.readback import ReadBack


@dataclass(frozen=True, slots=True)
class Sender:
    """How one account's resends go out: its client (API key, send limit), what reads its
    delivery reports back, and the longcode its SMS resends name."""

    client: MTAClient
    readback: ReadBack | None = None
    longcode_id: str | None = None


NO_SENDER = "account_not_configured"
"""The reason a resend is skipped whose account no longer has an API key or fallback
(the accounts file changed since it was scheduled)."""
