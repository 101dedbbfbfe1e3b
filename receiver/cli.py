"""``mta-receiver``: the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import ConfigError
from .settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mta-receiver`` console script."""
    parser = argparse.ArgumentParser(prog="mta-receiver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP app and the in-process worker")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--no-worker", action="store_true", help="accept webhooks only")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
    except ConfigError as exc:
        print(f"mta-receiver: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0  # pragma: no cover - argparse requires a command


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .logs import configure_logging
    from .protocol import deadline_protocol

    settings = Settings.from_env(run_worker=not args.no_worker)
    configure_logging(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
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


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        return "asyncio"
    return "uvloop"


if __name__ == "__main__":
    sys.exit(main())
