"""The application factory: routes, lifespan, store, worker, all assembled explicitly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from . import services
from .admin import create_admin
from .backfill.auto import AutoRepair
from .dispatch.loader import build_registry
from .dispatch.registry import Registry
from .dispatch.worker import Worker
from .errors import ConfigError
from .fallback import wiring
from .fallback.content import NO_LONGCODE
from .fallback.outbox import Outbox
from .metrics import Metrics
from .mta import MTAClient
from .mta.events import DEFAULT_ACCOUNT
from .settings import Settings
from .store import Store, create_store
from .web.intake import WEBHOOK_PATH, Intake
from .web.lifespan import run_lifespan

log = logging.getLogger("receiver.app")

_ACCOUNT_PATHS = WEBHOOK_PATH + "/"  # /webhooks/mta/NAME: Intake knows which names exist

BUSY_WEBHOOKS = 16
"""Webhooks waiting for their commit together, on average since the worker last looked,
from which the worker yields to them (a flood: at ordinary rates the average stays low)."""


class Receiver:
    """The ASGI app: the webhook paths go straight to `Intake`, the rest to Starlette."""

    def __init__(self, settings: Settings, registry: Registry, store: Store) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.metrics = Metrics()
        self.worker = Worker(
            store, registry, settings, metrics=self.metrics, busy=self._webhooks_waiting
        )
        self.intake = Intake(settings, store, self.metrics, on_accepted=self.worker.notify)
        self.mta_clients: dict[str, MTAClient] = {}  # by account (docs/accounts.md)
        self.outbox: Outbox | None = None
        routes: list[BaseRoute] = [
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.export_metrics),
        ]
        if settings.admin_password is not None:  # no password: no dashboard, /admin is 404
            routes.append(Mount("/admin", create_admin(settings, store, notify=self.worker.notify)))
        self.web = Starlette(routes=routes, lifespan=self.lifespan)

    def _webhooks_waiting(self) -> bool:
        """Many webhooks wait for their commit: the worker gives way to them."""
        return self.intake.crowd() >= BUSY_WEBHOOKS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            scope["path"] == WEBHOOK_PATH or scope["path"].startswith(_ACCOUNT_PATHS)
        ):
            await self.intake(scope, receive, send)
        elif scope["type"] == "lifespan":
            await run_lifespan(self.lifespan(self.web), receive, send)
        else:
            await self.web(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Open the store, run the worker; on shutdown finish or release its work.

        A failure after the store opened (a bad ``RECEIVER_FALLBACK_TEXT_LOOKUP``) still
        closes it: its thread would otherwise keep a process that cannot serve alive.
        """
        await self.store.open()
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.store.warm(worker=self.settings.run_worker)
            self.mta_clients = services.mta_clients(self.settings, self.metrics, self.store)
            senders = wiring.senders(self.settings, self.mta_clients)
            if senders and self.settings.run_worker:
                self.outbox = wiring.outbox(self.settings, self.store, senders, self.metrics)
                tasks.append(asyncio.create_task(self.outbox.run(), name="receiver-outbox"))
                for name, sender in senders.items():
                    if not sender.longcode_id:
                        log.warning("%s%s", _of(name), NO_LONGCODE)
            repairs = [
                AutoRepair(
                    self.store,
                    client,
                    self.settings,
                    self.metrics.backfill,
                    notify=self.worker.notify,
                    account=name,
                )
                for name, client in self.mta_clients.items()
            ]
            # Before this process's first heartbeat; the silence was every account's.
            gap = await repairs[0].gap() if repairs else None
            if gap is not None or self.settings.backfill_interval > 0:
                for auto in repairs:
                    tasks.append(asyncio.create_task(auto.run(gap), name="receiver-backfill"))
            if self.settings.run_worker:
                tasks.append(asyncio.create_task(self.worker.run(), name="receiver-worker"))
            settle_heap()
            log.info(
                "receiver ready: store=%s handlers=%d worker=%s fallback=%s",
                self.store.describe(),
                len(self.registry),
                "on" if self.settings.run_worker else "off",
                "on" if self.outbox else "off",
            )
            yield
        finally:
            await self._shut_down(tasks)

    async def _shut_down(self, tasks: list[asyncio.Task[None]]) -> None:
        """Stop the work, then close the store, whatever failed before (a store locked by
        another process fails the worker's last writes: the store must still close)."""
        if self.outbox is not None:
            self.outbox.stop()
        if self.settings.run_worker:
            await _logged("stopping the worker", self.worker.stop())
        for task in tasks:
            if task.get_name() == "receiver-backfill":  # runs until stopped
                task.cancel()
        for task, outcome in zip(
            tasks, await asyncio.gather(*tasks, return_exceptions=True), strict=True
        ):
            if isinstance(outcome, Exception):
                log.error("shutdown: %s failed: %s", task.get_name(), outcome)
        for client in self.mta_clients.values():
            await _logged("closing the MTA client", client.aclose())
        await _logged("closing the store", self.store.close())
        log.info("receiver stopped")

    async def healthz(self, request: Request) -> Response:
        """The process is up and serving."""
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """The store accepts writes; 503 otherwise (take this replica out of rotation)."""
        try:
            async with asyncio.timeout(5):
                await self.store.heartbeat(self.worker.owner, time.time())
        except Exception as exc:
            log.error("readiness check failed: %s", exc)
            return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, 503)
        return JSONResponse({"status": "ready"})

    async def export_metrics(self, request: Request) -> Response:
        """Prometheus text format; the store gauges are read first (collectors are sync)."""
        await self.metrics.store_gauges.refresh(self.store)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def settle_heap() -> None:
    """Take what start-up built (modules, settings, pools, the registry) out of the
    garbage collector's full passes: it lives as long as the process, and every full
    pass over it held every webhook in flight for its whole length (bench/README.md).
    Collected first, so no garbage of start-up is kept for good."""
    gc.collect()
    gc.freeze()


def _of(account: str) -> str:
    """A log line's prefix naming a non-default account."""
    return "" if account == DEFAULT_ACCOUNT else f"account {account}: "


async def _logged(what: str, step: Awaitable[None]) -> None:
    """Await one shutdown step; a failure is logged, and the next steps still run."""
    try:
        await step
    except Exception as exc:
        log.error("shutdown: %s failed: %s", what, exc)


def create_app(
    settings: Settings | None = None,
    registry: Registry | None = None,
    store: Store | None = None,
) -> Receiver:
    """Build the receiver. Defaults: settings from the environment, the built-in handlers
    plus ``RECEIVER_HANDLERS``, the store named by ``RECEIVER_DATABASE_URL``."""
    settings = settings or Settings.from_env()
    if registry is None:
        registry = build_registry(settings.handlers)
    if unknown := sorted(registry.accounts_named() - set(settings.accounts)):
        # Such a handler would never run, and nothing would say why.
        raise ConfigError(
            f"handlers are registered for account(s) {', '.join(unknown)}, which this"
            f" deployment does not serve (it serves: {', '.join(settings.accounts)})"
        )
    store = store or create_store(
        settings.database_url,
        pool_size=settings.pg_pool_size,
        statement_cache_size=settings.pg_statement_cache_size,
    )
    return Receiver(settings, registry, store)
