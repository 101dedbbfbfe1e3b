"""A custom handler module, loaded by tests through RECEIVER_HANDLERS.

Each handler appends one JSON line per call to the file named by SAMPLE_HANDLERS_LOG,
so a test in another process can count dispatches.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from receiver import Context, Event, Registry

registry = Registry()


def _record(handler: str, event: Event, ctx: Context) -> None:
    line = {
        "handler": handler,
        "event_id": event.id,
        "name": event.name,
        "message_id": event.message_id,
        "attempt": ctx.attempt,
        "pid": os.getpid(),
    }
    with Path(os.environ["SAMPLE_HANDLERS_LOG"]).open("a") as out:
        out.write(json.dumps(line) + "\n")


@registry.on("delivery-status")
async def on_status(event: Event, ctx: Context) -> None:
    """Record every delivery status; block while SAMPLE_HANDLERS_HOLD names a file."""
    hold = os.environ.get("SAMPLE_HANDLERS_HOLD")
    # The test in another process releases the handler by deleting a file: polling a
    # path is the only signal that crosses the process boundary here.
    while hold and Path(hold).exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.02)
    _record("on_status", event, ctx)


@registry.on("message-reply")
async def on_reply(event: Event, ctx: Context) -> None:
    """Record every reply."""
    _record("on_reply", event, ctx)


def read_log(path: Path) -> list[dict[str, object]]:
    """The recorded calls."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
