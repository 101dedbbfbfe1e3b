"""The handler registry: names, order, de-duplication, merging, error handlers."""

from __future__ import annotations

import functools

import pytest

from receiver import Context, Event, Registry
from receiver.dispatch.registry import KNOWN_NAMES, handler_name


async def first(event: Event, ctx: Context) -> None:
    """A module-level handler (stable name)."""


async def second(event: Event, ctx: Context) -> None:
    """Another module-level handler."""


async def third(event: Event, ctx: Context) -> None:
    """A third module-level handler."""


async def oops(error: BaseException, event: Event, ctx: Context) -> None:
    """A module-level error handler."""


class Notifier:
    """A handler object configured per instance (e.g. one per channel)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def handle(self, event: Event, ctx: Context) -> None:
        """Notify this instance's channel."""


def names(registry: Registry, event_name: str) -> list[str]:
    """The handler names an event would run, in order."""
    return [name for name, _ in registry.handlers_for(event_name)]


def test_on_registers_a_handler_under_one_name() -> None:
    """A handler registered for one name is returned for that name only."""
    registry = Registry()
    returned = registry.on("message-reply")(first)

    assert returned is first
    assert registry.handlers_for("message-reply") == [(handler_name(first), first)]
    assert registry.handlers_for("number-opt-in") == []
    assert len(registry) == 1


def test_on_registers_a_handler_under_several_names() -> None:
    """One decorator with several names registers the handler under each of them."""
    registry = Registry()
    registry.on("message-reply", "number-opt-in", "delivery-status.delivered")(first)

    for name in ("message-reply", "number-opt-in", "delivery-status.delivered"):
        assert names(registry, name) == [handler_name(first)]
    assert names(registry, "delivery-status.sent") == []
    assert names(registry, "message-send") == []


def test_unknown_name_is_refused_with_the_known_names_listed() -> None:
    """A misspelt event name fails at registration, and the message lists every known name."""
    registry = Registry()
    with pytest.raises(ValueError, match=r"delivery-status\.deliverd") as caught:
        registry.on("message-reply", "delivery-status.deliverd")

    message = str(caught.value)
    assert all(name in message for name in KNOWN_NAMES)
    assert len(registry) == 0


def test_on_without_names_is_refused() -> None:
    """`on()` with no name at all is an error, not a silent no-op."""
    with pytest.raises(ValueError, match="expected one of"):
        Registry().on()


def test_known_names_cover_types_statuses_and_unknown() -> None:
    """Every MTA type, every refined status and both `unknown` names are registrable."""
    registry = Registry()
    for name in (
        "message-reply",
        "delivery-status",
        "message-send",
        "number-opt-in",
        "unknown",
        "delivery-status.queued",
        "delivery-status.send-rejected",
        "delivery-status.unknown",
    ):
        registry.on(name)(first)
    assert names(registry, "unknown") == [handler_name(first)]


def test_most_specific_first_then_type_then_any() -> None:
    """A delivered status runs its `.delivered` handlers, then `delivery-status`, then on_any."""
    registry = Registry()
    registry.on_any(third)
    registry.on("delivery-status")(second)
    registry.on("delivery-status.delivered")(first)

    assert names(registry, "delivery-status.delivered") == [
        handler_name(first),
        handler_name(second),
        handler_name(third),
    ]
    assert names(registry, "delivery-status.sent") == [handler_name(second), handler_name(third)]
    assert names(registry, "message-reply") == [handler_name(third)]


def test_registration_order_is_kept_within_one_level() -> None:
    """Handlers of the same name run in the order they were registered."""
    registry = Registry()
    registry.on("message-send")(second)
    registry.on("message-send")(first)

    assert names(registry, "message-send") == [handler_name(second), handler_name(first)]


def test_handler_matching_under_two_names_runs_once_at_its_most_specific_place() -> None:
    """A handler on both `.delivered` and `delivery-status` (and on_any) is listed once, first."""
    registry = Registry()
    registry.on("delivery-status")(second)
    registry.on("delivery-status.delivered", "delivery-status")(first)
    registry.on_any(first)

    assert names(registry, "delivery-status.delivered") == [
        handler_name(first),
        handler_name(second),
    ]
    assert names(registry, "delivery-status.sent") == [handler_name(second), handler_name(first)]


def test_include_merges_names_catch_alls_and_error_handlers() -> None:
    """`include` adds another registry's handlers after this one's, at every level."""
    base = Registry()
    base.on("delivery-status")(first)
    plugin = Registry()
    plugin.on("delivery-status")(second)
    plugin.on("message-reply")(second)
    plugin.on_any(third)
    plugin.on_error(oops)

    base.include(plugin)

    assert names(base, "delivery-status.sent") == [
        handler_name(first),
        handler_name(second),
        handler_name(third),
    ]
    assert names(base, "message-reply") == [handler_name(second), handler_name(third)]
    assert base.error_handlers == (oops,)
    assert len(base) == 3, "distinct handlers, however many names each is registered for"
    assert len(plugin) == 2, "the included registry is left as it was"


def test_on_error_handlers_are_collected_in_order() -> None:
    """`on_error` returns the handler and keeps every error handler, in registration order."""

    async def other(error: BaseException, event: Event, ctx: Context) -> None:
        """A second error handler."""

    registry = Registry()
    assert registry.on_error(oops) is oops
    registry.on_error(other)

    assert registry.error_handlers == (oops, other)
    assert len(registry) == 0, "error handlers are not event handlers"


def test_handler_name_is_module_and_qualname() -> None:
    """A handler's recorded name is `module.qualname`, the same on every call."""

    async def nested(event: Event, ctx: Context) -> None:
        """A handler defined in a function."""

    assert handler_name(first) == f"{__name__}.first"
    assert handler_name(first) == handler_name(first)
    assert handler_name(nested) == (
        f"{__name__}.test_handler_name_is_module_and_qualname.<locals>.nested"
    )
    assert handler_name(Notifier.handle) == f"{__name__}.Notifier.handle"


def test_distinct_handlers_sharing_a_qualname_both_run() -> None:
    """Two instances' bound methods registered for one event are both dispatched."""
    registry = Registry()
    sms, email = Notifier("sms"), Notifier("email")
    registry.on("delivery-status")(sms.handle)
    registry.on("delivery-status")(email.handle)

    handlers = [handler for _, handler in registry.handlers_for("delivery-status.delivered")]
    assert handlers == [sms.handle, email.handle]


def test_handler_name_of_a_partial_does_not_depend_on_memory_addresses() -> None:
    """A `functools.partial` handler gets a name free of `0x...` addresses."""
    handler = functools.partial(first)

    assert hex(id(first)) not in handler_name(handler)
