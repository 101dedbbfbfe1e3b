"""Versioned schema migrations: ``migrations/<dialect>/NNNN_name.sql``, applied in order.

Each file runs in the transaction that records it in ``schema_migrations``, so a
migration is applied whole or not at all; callers hold a lock (SQLite's write lock, a
PostgreSQL advisory lock) so replicas starting together do not race.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
_COMMENT = re.compile(r"--[^\n]*")  # our migrations hold no "--" inside string literals

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements, comments dropped (for SQLite, whose files hold no inner
        ``;``; PostgreSQL runs a file whole)."""
        code = _COMMENT.sub("", self.sql)
        return [s.strip() for s in code.split(";") if s.strip()]


def migrations(dialect: str) -> list[Migration]:
    """All migrations shipped for ``dialect``, oldest first."""
    folder = resources.files(__package__).joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        if match := _NAME.match(entry.name):
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)
