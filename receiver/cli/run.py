"""``serve`` and ``worker``: run the receiver."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
from typing import Any

from ..app import create_app
from ..logs import configure_logging
from ..settings import Settings
from ..web.lifespan import reason

log = logging.getLogger("receiver.worker")


def register(commands: Any) -> None:
    """Add ``serve`` and ``worker``."""
    serve_ = commands.add_parser("serve", help="run the HTTP app and the in-process worker")
    serve_.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve_.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve_.add_argument("--no-worker", action="store_true", help="accept webhooks only")
    serve_.add_argument("--access-log", action="store_true", help="log every request")
    serve_.set_defaults(func=serve)
    worker_ = commands.add_parser(
        "worker", help="run the worker (and the resend outbox) without HTTP"
    )
    worker_.set_defaults(func=worker)


def serve(args: argparse.Namespace) -> int:
    """Run uvicorn with the receiver app, the worker and (with an MTA key) the outbox."""
    import uvicorn

    from ..web.netpolicy import uvicorn_forwarded_allow_ips
    from ..web.server import deadline_protocol

    settings = Settings.from_env(run_worker=not args.no_worker)
    configure_logging(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        http=deadline_protocol(settings.read_timeout),
        # X-Forwarded-For/-Proto are believed from these peers only (receiver/web/netpolicy.py).
        proxy_headers=True,
        forwarded_allow_ips=uvicorn_forwarded_allow_ips(settings.forwarded_allow_ips),
        loop=_loop(),
        lifespan="on",
        log_config=None,
        access_log=args.access_log,
        # Whole seconds (uvicorn types it int), rounded up: 0.5 must not become "no limit".
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down cleanly on Ctrl-C, then raises the signal again for the default
    # handler: that is the operator's way to stop it, not a crash.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else 1


def worker(args: argparse.Namespace) -> int:
    """The worker and outbox alone, until SIGTERM or SIGINT."""
    settings = Settings.from_env()
    configure_logging(settings)
    app = create_app(settings)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with app.lifespan(app.web):
                await stop.wait()
        except Exception as exc:  # one line, as serve says it (receiver/web/lifespan.py)
            log.error("worker failed: %s", reason(exc))
            log.debug("worker failure", exc_info=True)
            return 1
        return 0

    if _loop() == "uvloop":  # as `serve` runs: the worker's round trips cost less CPU
        import uvloop

        return uvloop.run(run())
    return asyncio.run(run())  # pragma: no cover - Windows


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        return "asyncio"
    return "uvloop"
