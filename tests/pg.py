"""PostgreSQL for tests: a fresh database per test on the local server, or a clear skip.

The server is the one ``.ci/run`` starts (``127.0.0.1:5432``, trust auth); set
``RECEIVER_TEST_POSTGRES_URL`` to use another. Each test gets ``CREATE DATABASE
receiver_<random>``, dropped after it (``WITH (FORCE)``: a killed receiver process may
still hold a connection), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from receiver.store import Store, create_store

ADMIN_URL = os.environ.get("RECEIVER_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def database_url(name: str) -> str:
    """``ADMIN_URL`` pointed at another database of the same server."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin() -> Any:
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("asyncpg is not installed: pip install -e '.[postgres]'")
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        host = urlsplit(ADMIN_URL).netloc
        pytest.skip(f"PostgreSQL not reachable at {host}: {type(exc).__name__}: {exc}")


async def create_database() -> str:
    """A new empty database; its URL."""
    admin = await _admin()
    name = f"receiver_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url(name)


async def drop_database(url: str) -> None:
    """Drop a database made by `create_database`, closing its connections."""
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A database for one async test; dropped after it."""
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@contextlib.contextmanager
def fresh_database_sync() -> Iterator[str]:
    """A database for one test driving processes (no event loop of its own)."""
    url = asyncio.run(create_database())
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read a database from sync test code, through a connection of its own."""

    async def run() -> list[tuple[Any, ...]]:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await conn.fetch(sql, *params)]
        finally:
            await conn.close()

    return asyncio.run(run())


# --- the contract suite's backends ------------------------------------------------------

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.asynccontextmanager
async def empty_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of ``backend`` (``sqlite`` or ``postgres``)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        async with fresh_database() as url:
            yield url


@contextlib.contextmanager
def empty_database_sync(backend: str, tmp_path: Path) -> Iterator[str]:
    """`empty_database` for sync tests that drive servers and processes (no event loop)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'receiver.db'}"
    else:
        with fresh_database_sync() as url:
            yield url


@contextlib.asynccontextmanager
async def opened_store(url: str, migrate: bool = True) -> AsyncIterator[Store]:
    """A store on ``url``, open for the block."""
    store = create_store(url)
    await store.open(migrate=migrate)
    try:
        yield store
    finally:
        await store.close()
