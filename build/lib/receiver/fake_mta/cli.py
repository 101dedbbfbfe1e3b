"""``python -m receiver.fake_mta``: run the fake MTA as a standalone server."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Sequence

from uvicorn.config import LOGGING_CONFIG

from .app import PREFIX, create_fake_mta
from .server import FakeMTAServer, server_config
from .state import FakeMTA

__all__ = ["build_parser", "main"]

API_KEY_ENV = "FAKE_MTA_API_KEY"


def _steps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected status codes like 3,4") from exc


def build_parser(prog: str = "python -m receiver.fake_mta") -> argparse.ArgumentParser:
    """The command line of the fake MTA (also used by ``mta-receiver fake-mta``)."""
    parser = argparse.ArgumentParser(prog=prog, description="Run a fake MTA API v3.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="port (default 8025)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"the accepted Bearer key (default ${API_KEY_ENV})",
    )
    parser.add_argument(
        "--auto-timeline",
        type=_steps,
        default=(),
        metavar="CODES",
        help="statuses played to registered webhooks after each send, e.g. 3,4",
    )
    parser.add_argument("--rate-limit", type=int, default=25, help="sends per window")
    parser.add_argument("--rate-window", type=float, default=15.0, help="window in seconds")
    parser.add_argument(
        "--one-based-pages",
        action="store_true",
        help="count list pages from 1 instead of 0 (MTA's documented example shows 0)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` and serve until interrupted; returns the exit status."""
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(f"--api-key or ${API_KEY_ENV} is required")
    fake = FakeMTA(
        args.api_key,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        first_page=1 if args.one_based_pages else 0,
    )
    fake.auto_timeline = args.auto_timeline
    config = server_config(
        create_fake_mta(fake),
        log_level=args.log_level,
        log_config=LOGGING_CONFIG,
        host=args.host,
        port=args.port,
    )
    print(f"fake MTA: base URL http://{args.host}:{args.port}{PREFIX}", flush=True)
    # uvicorn re-raises the SIGINT it caught once shut down; that is a normal exit.
    with contextlib.suppress(KeyboardInterrupt):
        FakeMTAServer(config, before_shutdown=fake.release_hangs).run()
    return 0
