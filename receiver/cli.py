"""``mta-receiver``: the command line. Each command lives in a `receiver.commands` module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .commands import MODULES
from .errors import ConfigError, ReceiverError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="mta-receiver", description="Receive Mobile Text Alerts webhooks."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in MODULES:
        importlib.import_module(f"receiver.commands.{name}").register(commands)
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
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"mta-receiver: configuration error: {exc}", file=sys.stderr)
        return 2
    except ReceiverError as exc:
        print(f"mta-receiver: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
