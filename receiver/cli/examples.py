"""Each command's one-line description and example, shown by ``mta-receiver CMD --help``.

Not a command module (it is not listed in ``MODULES``): `receiver.cli` applies `describe`
to the parser tree once every command is registered.
"""

from __future__ import annotations

import argparse

EXAMPLES: dict[str, str] = {
    "serve": "mta-receiver serve --host 127.0.0.1 --port 8000",
    "worker": "mta-receiver worker    # next to `serve --no-worker` replicas",
    "send": "mta-receiver send --to +15551234567 --text 'Your order shipped'",
    "trigger": "mta-receiver trigger delivery-status --status 6\n"
    "  mta-receiver trigger message-reply --url http://127.0.0.1:8000/webhooks/mta",
    "events list": "mta-receiver events list --type message-reply --since 1h\n"
    "  mta-receiver events list --account brand-b    # one account's",
    "events show": "mta-receiver events show 42",
    "replay": "mta-receiver replay --state dead --since 1d --dry-run",
    "dead-letters list": "mta-receiver dead-letters list --limit 20",
    "dead-letters retry": "mta-receiver dead-letters retry 42    # or --all",
    "resends list": "mta-receiver resends list --state unknown",
    "resends show": "mta-receiver resends show 912345 --account brand-b",
    "resends send": "mta-receiver resends send 912345    # --account NAME when several have it",
    "resends drop": "mta-receiver resends drop 912345",
    "purge": "mta-receiver purge --older-than 30d --dry-run",
    "db upgrade": "mta-receiver db upgrade",
    "db status": "mta-receiver db status --check",
    "webhooks register": "mta-receiver webhooks register --url https://example.com/webhooks/mta\n"
    "  mta-receiver webhooks register --account brand-b --url https://example.com/webhooks/mta",
    "webhooks list": "mta-receiver webhooks list",
    "webhooks prune": "mta-receiver webhooks prune --dry-run",
    "webhooks delete": "mta-receiver webhooks delete 1234",
    "webhooks rotate-secret": "mta-receiver webhooks rotate-secret"
    ' --new-secret "$NEW_SECRET" --url https://example.com/webhooks/mta',
    "doctor": "mta-receiver doctor --url https://example.com/webhooks/mta",
    "backfill": "mta-receiver backfill --since 2026-01-30 --dry-run    # then without",
    "events": "mta-receiver events list --since 1h",
    "dead-letters": "mta-receiver dead-letters list",
    "resends": "mta-receiver resends list",
    "db": "mta-receiver db status",
    "webhooks": "mta-receiver webhooks list",
}


def describe(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give every sub-command its description (its one-line help) and example."""
    for action in parser._actions:  # argparse has no public walk of its sub-parsers
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            command = f"{path} {name}".strip()
            help_ = helps.get(name)
            if sub.description is None and help_:
                sub.description = f"{help_[0].upper()}{help_[1:]}."
            if command in EXAMPLES:
                sub.epilog = f"example:\n  {EXAMPLES[command]}"
                sub.formatter_class = argparse.RawDescriptionHelpFormatter
            describe(sub, command)
