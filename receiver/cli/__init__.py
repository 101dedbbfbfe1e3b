"""``mta-receiver``: the command line. Each command lives in a `receiver.cli` module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from ..errors import ConfigError, ReceiverError
from .examples import describe

MODULES = (
    "run",
    "send",
    "trigger",
    "events",
    "resends",
    "db",
    "webhooks",
    "doctor",
    "backfill",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="mta-receiver",
        description="Receive Mobile Text Alerts webhooks: verify, store, dispatch to handlers,"
        " resend failed iMessages as SMS.",
        epilog="start here:\n  mta-receiver serve            # in one terminal\n"
        "  mta-receiver trigger message-reply   # in another\n"
        "  mta-receiver events list\n\n"
        "mta-receiver COMMAND --help describes a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in MODULES:
        importlib.import_module(f"receiver.cli.{name}").register(commands)
    fake = commands.add_parser("fake-mta", help="run a fake MTA API for tests and demos")
    fake.add_argument("args", nargs=argparse.REMAINDER, help="see fake-mta --help")
    describe(parser)
    return parser


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("mta-receiver")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mta-receiver`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fake-mta"]:  # its own parser, its own --help
        from ..fake_mta import main as fake_main

        return fake_main(argv[1:], prog="mta-receiver fake-mta")
    parser = build_parser()
    if not argv:  # no command: the help, not an error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"mta-receiver: configuration error: {exc}", file=sys.stderr)
        return 2
    except ReceiverError as exc:
        print(f"mta-receiver: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # an input no check foresaw: still one line, not a traceback
        if os.environ.get("RECEIVER_LOG_LEVEL", "").strip().upper() == "DEBUG":
            raise
        hint = ""
        if "no such table" in str(exc) or "does not exist" in str(exc):
            hint = "; is this the receiver's database? (mta-receiver db status)"
        print(
            f"mta-receiver: {type(exc).__name__}: {exc}{hint}"
            " (RECEIVER_LOG_LEVEL=DEBUG shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
