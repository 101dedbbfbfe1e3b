"""The ``mta-receiver`` commands, one module per command family.

Each module defines ``register(commands)``, which adds its sub-parsers to the
``argparse`` sub-parsers object and sets ``func`` on each to the function that runs it
(``func(args) -> exit status``). `receiver.cli` registers the modules listed in `MODULES`.
"""

from __future__ import annotations

MODULES = ("run", "send", "trigger", "events", "resends", "db", "webhooks", "doctor")
