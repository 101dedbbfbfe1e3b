"""Baseline for the ingest benchmark: the least a Starlette app can do per webhook.

It reads the body and answers 200, nothing else, so the receiver's figures can be
read as a fraction of what the framework and server stack allow on this machine.
Served by ``bench/ingest.py`` with uvicorn, uvloop and httptools like the receiver.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def webhook(request: Request) -> Response:
    """Read the whole body and acknowledge it."""
    await request.body()
    return Response(status_code=200)


async def healthz(request: Request) -> Response:
    """Readiness probe, polled by the benchmark before it sends load."""
    return Response(status_code=200)


app = Starlette(
    routes=[
        Route("/webhooks/mta", webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
