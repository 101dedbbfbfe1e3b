"""The context a handler receives beside the event."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import MessageState, Store


@dataclass(frozen=True, slots=True)
class Context:
    """Resources and facts for one handler run.

    ``attempt`` counts this handler's runs on this event, from 1. ``log`` carries the
    event's identity on every line.
    """

    store: Store
    settings: Settings
    log: logging.LoggerAdapter[logging.Logger]
    handler: str
    attempt: int

    async def message_state(self, message_id: str | None) -> MessageState | None:
        """The latest (forward-only) state of a message, or None if never seen."""
        if message_id is None:
            return None
        return await self.store.message_state(message_id)
