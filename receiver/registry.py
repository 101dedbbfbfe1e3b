"""The handler registry: plain ``async def handler(event, ctx)`` functions by event name.

Built-in handlers (``handlers/``) and users' modules register exactly the same way::

    from receiver import Registry

    registry = Registry()

    @registry.on("delivery-status.delivered")
    async def delivered(event, ctx):
        ...

Names are an MTA event type (``delivery-status``), a refined delivery status
(``delivery-status.delivery-failed``) or ``unknown``. An event runs its most specific
handlers first, then those of its type, then ``on_any`` ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .events import DELIVERY_STATUS, EVENT_TYPES, UNKNOWN
from .statuses import STATUS_NAMES

if TYPE_CHECKING:
    from .context import Context
    from .events import Event

Handler = Callable[["Event", "Context"], Awaitable[Any]]
ErrorHandler = Callable[[BaseException, "Event", "Context"], Awaitable[Any]]
H = TypeVar("H", bound=Handler)
E = TypeVar("E", bound=ErrorHandler)

KNOWN_NAMES = frozenset(
    [*EVENT_TYPES, UNKNOWN]
    + [f"{DELIVERY_STATUS}.{name}" for name in STATUS_NAMES.values()]
    + [f"{DELIVERY_STATUS}.{UNKNOWN}"]
)


def handler_name(handler: Callable[..., Any]) -> str:
    """The stable name under which a handler's runs are recorded (module.qualname)."""
    return f"{handler.__module__}.{getattr(handler, '__qualname__', repr(handler))}"


class Registry:
    """Event names mapped to handlers, plus catch-all and error handlers."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[Handler]] = {}
        self._any: list[Handler] = []
        self._error: list[ErrorHandler] = []

    def on(self, *names: str) -> Callable[[H], H]:
        """Register the decorated handler for one or more event names."""
        unknown = [n for n in names if n not in KNOWN_NAMES]
        if not names or unknown:
            raise ValueError(
                f"unknown event name(s) {unknown or names!r}; expected one of"
                f" {', '.join(sorted(KNOWN_NAMES))}"
            )

        def decorate(handler: H) -> H:
            for name in names:
                self._by_name.setdefault(name, []).append(handler)
            return handler

        return decorate

    def on_any(self, handler: H) -> H:
        """Register the decorated handler for every event."""
        self._any.append(handler)
        return handler

    def on_error(self, handler: E) -> E:
        """Register ``async def (error, event, ctx)``, called when a handler fails."""
        self._error.append(handler)
        return handler

    def include(self, other: Registry) -> None:
        """Add every handler of ``other`` to this registry."""
        for name, handlers in other._by_name.items():
            self._by_name.setdefault(name, []).extend(handlers)
        self._any.extend(other._any)
        self._error.extend(other._error)

    def handlers_for(self, name: str) -> list[tuple[str, Handler]]:
        """Handlers for an event name, most specific first, each once."""
        chain: list[Handler] = []
        if "." in name:
            chain += self._by_name.get(name, [])
        chain += self._by_name.get(name.split(".", 1)[0], [])
        chain += self._any
        seen: dict[str, Handler] = {}
        for handler in chain:
            seen.setdefault(handler_name(handler), handler)
        return list(seen.items())

    @property
    def error_handlers(self) -> tuple[ErrorHandler, ...]:
        """The ``on_error`` handlers, in registration order."""
        return tuple(self._error)

    def __len__(self) -> int:
        return sum(map(len, self._by_name.values())) + len(self._any)
