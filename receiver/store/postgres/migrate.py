"""Applying the PostgreSQL migrations, one replica at a time."""

from __future__ import annotations

import time
from typing import Any

from ..migrate import migrations
from . import statements as pg_sql


async def apply_migrations(conn: Any) -> list[int]:
    """Apply missing migrations, each in its own transaction; return their versions.

    A session advisory lock serializes replicas that start together; the lock dies
    with the session, so a replica killed mid-migration blocks nobody.
    """
    done: list[int] = []
    # Waits as long as another replica migrates (lock_timeout would end its start-up
    # after 10 s of a long index build); the migrations themselves keep the limit.
    await conn.execute("SET lock_timeout = 0")
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", pg_sql.MIGRATION_LOCK)
    finally:  # pooled connections keep their session settings (_keep_session)
        await conn.execute("RESET lock_timeout")
    try:
        await conn.execute(pg_sql.CREATE_MIGRATIONS)
        rows = await conn.fetch("SELECT version FROM schema_migrations")
        applied = {row[0] for row in rows}
        for migration in migrations("postgres"):
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    pg_sql.RECORD_MIGRATION, migration.version, migration.name, time.time()
                )
            done.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", pg_sql.MIGRATION_LOCK)
    return done
