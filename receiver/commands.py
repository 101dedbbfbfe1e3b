"""What each ``mta-receiver`` command does (argument parsing is in `receiver.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from .app import create_app
from .logs import configure_logging
from .settings import Settings


def serve(args: argparse.Namespace) -> int:
    """Run uvicorn with the receiver app, the worker and (with an MTA key) the outbox."""
    import uvicorn

    from .protocol import deadline_protocol

    settings = Settings.from_env(run_worker=not args.no_worker)
    configure_logging(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        http=deadline_protocol(settings.read_timeout),
        loop=_loop(),
        lifespan="on",
        log_config=None,
        access_log=args.access_log,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def worker(args: argparse.Namespace) -> int:
    """The worker and outbox alone, until SIGTERM or SIGINT."""
    settings = Settings.from_env()
    configure_logging(settings)
    app = create_app(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with app.lifespan(app.web):
            await stop.wait()

    asyncio.run(run())
    return 0


def send(args: argparse.Namespace) -> int:
    """Send one message through MTA, record its text and route, print MTA's answer."""
    from .metrics import Metrics
    from .send import send_message
    from .services import mta_client
    from .store import create_store

    settings = Settings.from_env()

    async def run() -> dict[str, object]:
        store = create_store(settings.database_url)
        await store.open()
        client = mta_client(settings, Metrics())
        try:
            result = await send_message(
                client,
                store,
                to=args.to,
                text=args.text,
                sender_name=args.sender_name,
                external_id=args.external_id,
            )
        finally:
            await client.aclose()
            await store.close()
        return {
            "messageId": result.message_id,
            "totalSent": result.total_sent,
            "requestId": result.request_id,
        }

    print(json.dumps(asyncio.run(run())))
    return 0


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        return "asyncio"
    return "uvloop"
