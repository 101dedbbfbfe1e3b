"""The handler registry: plain ``async def handler(event, ctx)`` functions by event name.

Built-in handlers (``handlers/``) and users' modules register exactly the same way::

    from .. import Registry

    registry = Registry()

    @registry.on("delivery-status.delivered")
    async def delivered(event, ctx):
        ...

Names are an MTA event type (``delivery-status``), a refined delivery status
(``delivery-status.delivery-failed``) or ``unknown``. An event runs its most specific
handlers first, then those of its type, then ``on_any`` ones. ``on(..., account="brand-a")``
(or a tuple of names) limits a handler to the events of those MTA accounts (docs/accounts.md).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ..mta.events import DEFAULT_ACCOUNT, DELIVERY_STATUS, EVENT_TYPES, UNKNOWN
from ..mta.statuses import STATUS_NAMES

if TYPE_CHECKING:
    from ..mta.events import Event
    from .context import Context

Handler = Callable[["Event", "Context"], Awaitable[Any]]
ErrorHandler = Callable[[BaseException, "Event", "Context"], Awaitable[Any]]
Accounts = frozenset[str] | None
"""The accounts a registration is limited to; None: every account."""
H = TypeVar("H", bound=Handler)
E = TypeVar("E", bound=ErrorHandler)

KNOWN_NAMES = frozenset(
    [*EVENT_TYPES, UNKNOWN]
    + [f"{DELIVERY_STATUS}.{name}" for name in STATUS_NAMES.values()]
    + [f"{DELIVERY_STATUS}.{UNKNOWN}"]
)


def handler_name(handler: Callable[..., Any]) -> str:
    """The stable name under which a handler's runs are recorded: ``module.qualname``.

    Never a ``repr`` (it holds a memory address that changes at every restart, and a
    finished handler would run again): partials name their function, callable objects
    their class.
    """
    while isinstance(handler, functools.partial):
        handler = handler.func
    named = handler if hasattr(handler, "__qualname__") else type(handler)
    module = getattr(handler, "__module__", None) or type(handler).__module__
    return f"{module}.{named.__qualname__}"


class Registry:
    """Event names mapped to handlers, plus catch-all and error handlers."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[tuple[Handler, Accounts]]] = {}
        self._any: list[tuple[Handler, Accounts]] = []
        self._error: list[ErrorHandler] = []
        self._run_names: dict[tuple[int, int], str] = {}
        self._taken: dict[str, int] = {}

    def on(self, *names: str, account: str | Iterable[str] | None = None) -> Callable[[H], H]:
        """Register the decorated handler for one or more event names, of every account
        or only of ``account`` (a name or several)."""
        unknown = [n for n in names if n not in KNOWN_NAMES]
        if not names or unknown:
            raise ValueError(
                f"unknown event name(s) {unknown or names!r}; expected one of"
                f" {', '.join(sorted(KNOWN_NAMES))}"
            )
        accounts = _accounts(account)

        def decorate(handler: H) -> H:
            for name in names:
                self._add(self._by_name.setdefault(name, []), handler, accounts)
            return handler

        return decorate

    def on_any(self, handler: H) -> H:
        """Register the decorated handler for every event."""
        self._add(self._any, handler, None)
        return handler

    def on_error(self, handler: E) -> E:
        """Register ``async def (error, event, ctx)``, called when a handler fails."""
        self._error.append(handler)
        return handler

    def include(self, other: Registry) -> None:
        """Add every handler of ``other`` to this registry."""
        for name, handlers in other._by_name.items():
            for handler, accounts in handlers:
                self._add(self._by_name.setdefault(name, []), handler, accounts)
        for handler, accounts in other._any:
            self._add(self._any, handler, accounts)
        self._error.extend(other._error)

    def handlers_for(self, name: str, account: str = DEFAULT_ACCOUNT) -> list[tuple[str, Handler]]:
        """Handlers for an event name of ``account`` with their run names, most specific
        first, each once."""
        chain: list[tuple[Handler, Accounts]] = []
        if "." in name:
            chain += self._by_name.get(name, [])
        chain += self._by_name.get(name.split(".", 1)[0], [])
        chain += self._any
        seen: dict[str, Handler] = {}
        for handler, accounts in chain:
            if accounts is None or account in accounts:
                seen.setdefault(self._run_names[_key(handler)], handler)
        return list(seen.items())

    def accounts_named(self) -> frozenset[str]:
        """Every account a registration is limited to: start-up checks each is configured,
        or its handlers would silently never run."""
        entries = [*self._any, *(e for handlers in self._by_name.values() for e in handlers)]
        return frozenset(name for _, accounts in entries for name in accounts or ())

    @property
    def error_handlers(self) -> tuple[ErrorHandler, ...]:
        """The ``on_error`` handlers, in registration order."""
        return tuple(self._error)

    def __len__(self) -> int:
        return len(self._run_names)

    def _add(
        self, handlers: list[tuple[Handler, Accounts]], handler: Handler, accounts: Accounts
    ) -> None:
        # The run name is fixed when a handler is first registered. Distinct handlers that
        # share a qualname (bound methods of two instances, closures of one factory) get
        # "#2", "#3"... in registration order, so each keeps its own record of runs.
        key = _key(handler)
        if key not in self._run_names:
            base = handler_name(handler)
            self._taken[base] = count = self._taken.get(base, 0) + 1
            self._run_names[key] = base if count == 1 else f"{base}#{count}"
        handlers.append((handler, accounts))


def _accounts(account: str | Iterable[str] | None) -> Accounts:
    if account is None:
        return None
    names = frozenset([account] if isinstance(account, str) else account)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"account must be an account name or several, got {account!r}")
    return names


def _key(handler: Callable[..., Any]) -> tuple[int, int]:
    # A bound method is a new object at each attribute access: key it by function and
    # instance; any other callable by identity.
    func = getattr(handler, "__func__", None)
    owner = getattr(handler, "__self__", None)
    if func is not None and owner is not None:
        return (id(func), id(owner))
    return (id(handler), 0)
