"""Run an ASGI app (the fake MTA, or a test's tiny receiver) with uvicorn on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from .app import PREFIX, create_fake_mta
from .state import FakeMTA

__all__ = ["FakeMTAServer", "running_fake_mta", "running_server"]


class FakeMTAServer(uvicorn.Server):
    """A uvicorn server that calls ``before_shutdown`` as shutdown begins.

    uvicorn waits for open requests before the app's lifespan shutdown runs, so a
    ``hang`` fault must be released here, or shutdown would wait for it.
    """

    def __init__(
        self, config: uvicorn.Config, before_shutdown: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Release held requests, then shut down as uvicorn does."""
        if self._before_shutdown is not None:
            self._before_shutdown()
        await super().shutdown(sockets=sockets)


def server_config(
    app: ASGIApp,
    *,
    log_level: str = "warning",
    log_config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> uvicorn.Config:
    """uvicorn settings shared by tests and the CLI (``kwargs``: host, port, access_log).

    ``log_config`` None leaves logging alone, as tests want; the CLI passes uvicorn's.
    """
    return uvicorn.Config(
        app,
        log_config=log_config,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **kwargs,
    )


@contextlib.contextmanager
def running_server(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = 10.0,
    before_shutdown: Callable[[], None] | None = None,
) -> Iterator[str]:
    """Serve ``app`` on a free port in a thread; yields its root URL, stops it on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))  # the port is ours before the thread starts: no race
    port = sock.getsockname()[1]
    server = FakeMTAServer(server_config(app, access_log=False), before_shutdown)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not start within {startup_timeout}s")
            thread.join(0.005)  # waits on the thread itself, so a crash ends the wait
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()


@contextlib.contextmanager
def running_fake_mta(fake: FakeMTA, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a fake MTA for ``fake`` in a thread; yields the base URL (``.../v3``)."""
    app = create_fake_mta(fake)
    with running_server(app, host=host, before_shutdown=fake.release_hangs) as root:
        yield root + PREFIX
