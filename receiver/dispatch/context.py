"""The context a handler receives beside the event, and the narrow view of the store
it gets: typed reads and the fallback's repository, never a statement executor."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..mta.events import DEFAULT_ACCOUNT

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import MessageState, Store
    from ..store.resends import Resends


class HandlerStore(Protocol):
    """What a handler may ask of the store (``ctx.store``)."""

    async def message_state(
        self, message_id: str, account: str = DEFAULT_ACCOUNT
    ) -> MessageState | None:
        """The latest (forward-only) state of a message of ``account``, or None if never seen."""
        ...

    async def opted_out(self, phone: str, account: str = DEFAULT_ACCOUNT) -> bool:
        """Whether a number opted out of SMS (a STOP reply or MTA's status 11) in
        ``account``, or in any account when opt-outs are global (RECEIVER_OPT_OUT_SCOPE)."""
        ...

    @property
    def resends(self) -> Resends:
        """The SMS fallback's resends, opt-outs and sent messages (the built-in fallback
        handlers use these; so may yours)."""
        ...


class StoreView:
    """The `HandlerStore` a worker hands its handlers: it forwards these operations to
    the store and offers nothing else."""

    __slots__ = ("_global_opt_outs", "_store")

    def __init__(self, store: Store, global_opt_outs: bool = False) -> None:
        self._store = store
        self._global_opt_outs = global_opt_outs

    async def message_state(
        self, message_id: str, account: str = DEFAULT_ACCOUNT
    ) -> MessageState | None:
        """The latest (forward-only) state of a message of ``account``, or None if never seen."""
        return await self._store.message_state(message_id, account)

    async def opted_out(self, phone: str, account: str = DEFAULT_ACCOUNT) -> bool:
        """Whether a number opted out of SMS (a STOP reply or MTA's status 11) in
        ``account``, or in any account when opt-outs are global (RECEIVER_OPT_OUT_SCOPE)."""
        return await self._store.resends.opted_out(
            phone, None if self._global_opt_outs else account
        )

    @property
    def resends(self) -> Resends:
        """The SMS fallback's resends, opt-outs and sent messages."""
        return self._store.resends

    def __repr__(self) -> str:
        return "StoreView()"


@dataclass(frozen=True, slots=True)
class Context:
    """Resources and facts for one handler run.

    ``store`` is a narrow, typed view (`HandlerStore`), not the store itself.
    ``attempt`` counts this handler's runs on this event, from 1. ``log`` carries the
    event's identity on every line.
    """

    store: HandlerStore
    settings: Settings
    log: logging.LoggerAdapter[logging.Logger]
    handler: str
    attempt: int
    account: str = DEFAULT_ACCOUNT
    """The event's MTA account: a handler acting on MTA acts in this one."""

    async def message_state(self, message_id: str | None) -> MessageState | None:
        """The latest (forward-only) state of a message of this event's account, or None
        if never seen."""
        if message_id is None:
            return None
        return await self.store.message_state(message_id, self.account)

    async def opted_out(self, phone: str) -> bool:
        """Whether a number opted out of SMS in this event's account (or anywhere, with
        RECEIVER_OPT_OUT_SCOPE=global)."""
        return await self.store.opted_out(phone, self.account)
