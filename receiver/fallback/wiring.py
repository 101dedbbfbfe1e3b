"""The fallback's outbox built from settings (the app starts it beside the worker)."""

from __future__ import annotations

from ..dispatch.loader import load_object
from ..metrics import Metrics
from ..mta import MTAClient
from ..mta.readback import ReadBack
from ..settings import Settings
from ..store import Store
from .content import TextLookup
from .outbox import Outbox


def outbox(settings: Settings, store: Store, client: MTAClient, metrics: Metrics) -> Outbox:
    """The resend outbox, with the user's text lookup when one is configured."""
    lookup: TextLookup | None = None
    if settings.fallback_text_lookup:
        lookup = load_object(settings.fallback_text_lookup, "RECEIVER_FALLBACK_TEXT_LOOKUP")
    readback = ReadBack(client, country=settings.default_country_code)
    return Outbox(store, client, settings, metrics, text_lookup=lookup, readback=readback)
