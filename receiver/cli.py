"""``mta-receiver``: the command line. Each command's work lives in `receiver.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import ConfigError, ReceiverError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="mta-receiver", description="Receive Mobile Text Alerts webhooks."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP app and the in-process worker")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--no-worker", action="store_true", help="accept webhooks only")
    serve.add_argument("--access-log", action="store_true", help="log every request")

    commands.add_parser("worker", help="run the worker (and the resend outbox) without HTTP")

    send = commands.add_parser("send", help="send a message through MTA and record its text")
    send.add_argument("--to", required=True, help="the recipient's number (E.164)")
    send.add_argument("--text", required=True, help="the message")
    send.add_argument("--sender-name", help="iMessage Sender Identity (iMessage route)")
    send.add_argument("--external-id", help="your own id, echoed in MTA's webhooks")

    fake = commands.add_parser("fake-mta", help="run a fake MTA API for tests and demos")
    fake.add_argument("args", nargs=argparse.REMAINDER, help="see fake-mta --help")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mta-receiver`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fake-mta"]:  # its own parser, its own --help
        from .fake_mta import main as fake_main

        return fake_main(argv[1:], prog="mta-receiver fake-mta")
    args = build_parser().parse_args(argv)
    from . import commands

    try:
        return int(getattr(commands, args.command.replace("-", "_"))(args))
    except ConfigError as exc:
        print(f"mta-receiver: configuration error: {exc}", file=sys.stderr)
        return 2
    except ReceiverError as exc:
        print(f"mta-receiver: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
