"""Connection-level faults: answering late, never answering, and dropping the connection.

ASGI has no "abort": an exception before the response starts makes uvicorn answer 500,
and one after it starts leaves the status line on the wire. To drop a connection with no
bytes sent, :func:`drop` closes uvicorn's transport itself (an httpx client then sees
``httpx.RemoteProtocolError: Server disconnected without sending a response``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol, runtime_checkable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from .state import FakeMTA

__all__ = ["drop", "hold"]


@runtime_checkable
class _Transport(Protocol):
    # asyncio's and uvloop's transports alike (uvloop's do not subclass asyncio's).
    def close(self) -> None: ...
    def is_closing(self) -> bool: ...


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def hold(fake: FakeMTA, request: Request, seconds: float, *, until_disconnect: bool) -> None:
    """Wait ``seconds``, or less if released by the fake (server shutdown) or, when
    ``until_disconnect``, if the client gives up. The body must already be read."""
    released = asyncio.Event()
    loop = asyncio.get_running_loop()
    fake.add_waiter(loop, released)
    waits: set[asyncio.Future[object]] = {asyncio.ensure_future(released.wait())}
    if until_disconnect:
        waits.add(asyncio.ensure_future(_until_disconnect(request.receive)))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        fake.remove_waiter(loop, released)
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def drop(request: Request) -> Response:
    """Close the client's connection without an answer; returns a response never sent."""
    # uvicorn passes its RequestResponseCycle.receive (h11 and httptools alike), whose
    # owner holds the asyncio transport of the connection.
    owner = getattr(request.receive, "__self__", None)
    transport = getattr(owner, "transport", None)
    if not isinstance(transport, _Transport):
        raise RuntimeError("the 'drop' fault needs the fake to run under uvicorn")
    transport.close()
    # Wait until uvicorn sees the close, so it does not try to answer 500 for us.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            await _until_disconnect(request.receive)
    return Response(status_code=500)
