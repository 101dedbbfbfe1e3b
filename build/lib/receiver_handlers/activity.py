"""Log the low-volume, human-facing events: replies and opt-ins.

Delivery statuses are too many to log one by one; the metrics count them.
"""

from __future__ import annotations

from receiver import Context, Event, Registry, label, redact_phone

registry = Registry()


@registry.on("message-reply")
async def reply_received(event: Event, ctx: Context) -> None:
    """One line per inbound reply; the text itself stays out of the log."""
    ctx.log.info(
        "reply from %s (%d characters)",
        redact_phone(event.phone, ctx.settings.redact),
        len(event.text or ""),
    )


@registry.on("number-opt-in")
async def opted_in(event: Event, ctx: Context) -> None:
    """One line per opt-in, with its ``optInType`` when that is a plain word (its values
    are undocumented: anything else could carry a number or a forged line)."""
    ctx.log.info(
        "number %s opted in (%s)",
        redact_phone(event.phone, ctx.settings.redact),
        label(event.raw.get("optInType"), "unknown type"),
    )
