"""The ASGI lifespan protocol around the receiver's lifespan, with short start-up errors.

Starlette would answer a failed start-up with the whole traceback as the message, which
uvicorn logs as one line thousands of characters long with the reason at its end. Here
the reason comes first, on one short line; the traceback is logged at DEBUG only.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager

from starlette.types import Receive, Send

from ..errors import ConfigError, ReceiverError

log = logging.getLogger("receiver.app")

REASON_LIMIT = 300
"""Characters of an exception's text a start-up error line keeps."""


def reason(exc: BaseException) -> str:
    """What went wrong, in one short line: our own errors say it; others are named."""
    text = " ".join(str(exc).split())
    if isinstance(exc, ConfigError):
        text = f"configuration error: {text}"
    elif not isinstance(exc, ReceiverError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 3] + "..."


async def run_lifespan(
    context: AbstractAsyncContextManager[None], receive: Receive, send: Send
) -> None:
    """Answer ``lifespan.startup`` and ``lifespan.shutdown`` by entering and leaving
    ``context``; a failure is logged as one line and reported to the server."""
    await receive()  # lifespan.startup
    try:
        await context.__aenter__()
    except Exception as exc:
        log.error("start-up failed: %s", reason(exc))
        log.debug("start-up failure", exc_info=True)
        # No message: the server would log it again, and its own line says it exits.
        await send({"type": "lifespan.startup.failed", "message": ""})
        return
    await send({"type": "lifespan.startup.complete"})
    await receive()  # lifespan.shutdown
    try:
        await context.__aexit__(None, None, None)
    except Exception as exc:
        log.error("shutdown failed: %s", reason(exc))
        log.debug("shutdown failure", exc_info=True)
        await send({"type": "lifespan.shutdown.failed", "message": reason(exc)})
        return
    await send({"type": "lifespan.shutdown.complete"})
