"""What the store can say about its own schema and server: migration status for
``db status`` and ``doctor``, PostgreSQL's autovacuum settings."""

from __future__ import annotations

from dataclasses import dataclass

from .connector import Connector, named
from .migrate import migrations

# Whether the bookkeeping table exists yet, asked of each backend's catalog (reading it
# on an empty database would be an error, and `db status` must not write).
_HAS_TABLE = {
    "sqlite": "SELECT count(*) FROM sqlite_master"
    " WHERE type = 'table' AND name = 'schema_migrations'",
    "postgres": "SELECT count(*) FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
}
VACUUM_SETTINGS = ("autovacuum", "track_counts")


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """One shipped migration and when it was applied (None: pending)."""

    version: int
    name: str
    applied_at: float | None


async def migration_status(db: Connector, backend: str) -> list[MigrationStatus]:
    """Every migration shipped for ``backend``, with its applied time if any."""
    applied: dict[int, float] = {}
    [(exists,)] = await db.fetch(_HAS_TABLE[backend])
    if exists:
        rows = await db.fetch("SELECT version, applied_at FROM schema_migrations")
        for row in rows:
            found = named(("version", "applied_at"), row)
            applied[int(found["version"])] = float(found["applied_at"])
    return [MigrationStatus(m.version, m.name, applied.get(m.version)) for m in migrations(backend)]


async def server_settings(db: Connector, names: tuple[str, ...]) -> dict[str, str]:
    """PostgreSQL's current value of each setting in ``names`` (``SHOW``)."""
    return {name: str((await db.fetch(f"SHOW {name}"))[0][0]) for name in names}
