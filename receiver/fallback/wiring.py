"""The fallback's outbox built from settings (the app starts it beside the worker)."""

from __future__ import annotations

from collections.abc import Mapping

from ..dispatch.loader import load_object
from ..errors import ConfigError
from ..metrics import Metrics
from ..mta import MTAClient
from ..mta.readback import ReadBack
from ..settings import Settings
from ..store import Store
from .content import TextLookup, takes_account
from .outbox import Outbox
from .sender import Sender


def senders(settings: Settings, clients: Mapping[str, MTAClient]) -> dict[str, Sender]:
    """A `Sender` for every account with a client whose fallback is on."""
    return {
        name: Sender(
            client,
            ReadBack(client, country=settings.default_country_code),
            settings.accounts[name].fallback_longcode_id,
        )
        for name, client in clients.items()
        if settings.accounts[name].fallback_enabled
    }


def outbox(
    settings: Settings, store: Store, senders: Mapping[str, Sender], metrics: Metrics
) -> Outbox:
    """The resend outbox, with the user's text lookup when one is configured."""
    lookup: TextLookup | None = None
    if settings.fallback_text_lookup:
        lookup = load_object(settings.fallback_text_lookup, "RECEIVER_FALLBACK_TEXT_LOOKUP")
        if settings.file_accounts and not takes_account(lookup):
            # It would be asked for brand-b's message 77 and answer with another's text.
            raise ConfigError(
                f"RECEIVER_FALLBACK_TEXT_LOOKUP {settings.fallback_text_lookup} takes no"
                " account, and message ids repeat across the accounts of"
                " RECEIVER_ACCOUNTS_FILE: give it a parameter, async def"
                " lookup(original_message_id, account)"
            )
    return Outbox(store, senders, settings, metrics, text_lookup=lookup)
