"""A signed test webhook sent to the public URL, as MTA would send it.

``webhooks rotate-secret`` sends one signed with the new secret before switching MTA to
it; ``doctor`` sends one and then looks for it in the store. The body is shaped like an
opt-in (a small JSON object) with a unique ``testId``, but with no number, no
``optInType`` and no ``?event=``: the receiver stores it as an ``unknown`` event
(deduplicated by its body hash, so each probe is new) and no handler of a real event type
(an opt-in lifting an opt-out, say) acts on it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import httpx

from ..web.verify import sign

PROBE_TYPE = "receiver-test"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the public URL answered to a signed test webhook."""

    status: int | None  # None: no answer at all
    error: str | None = None

    @property
    def accepted(self) -> bool:
        """MTA would count this as delivered (only 200 counts, docs/mta.md)."""
        return self.status == 200


def probe_body() -> bytes:
    """A unique test body that the receiver files as an ``unknown`` event."""
    return json.dumps({"type": PROBE_TYPE, "testId": uuid.uuid4().hex}).encode()


def base_url(url: str) -> str:
    """The URL without its query string: what our registrations have in common."""
    return url.split("?", 1)[0].rstrip("/")


async def send_probe(url: str, secret: str, body: bytes, wait: float = 10.0) -> ProbeResult:
    """POST ``body`` signed with ``secret`` to ``url`` (its query string dropped)."""
    headers = {"X-Signature": sign(secret, body), "Content-Type": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=wait) as client:
            response = await client.post(base_url(url), content=body, headers=headers)
    except httpx.HTTPError as exc:
        return ProbeResult(None, f"{type(exc).__name__}: {exc}")
    return ProbeResult(response.status_code)


def fix_for(status: int) -> str:
    """How to fix a public URL that answered a test webhook with ``status``."""
    fixes = {
        401: "the receiver there does not accept the first secret of RECEIVER_WEBHOOK_SECRETS:"
        " give every replica the same secrets",
        403: "this source is outside RECEIVER_WEBHOOK_ALLOW_NETWORKS (or the proxy's"
        " address is missing from RECEIVER_FORWARDED_ALLOW_IPS)",
        404: "the URL's path is wrong: the webhook path is /webhooks/mta",
        405: "the URL's path is wrong: the webhook path is /webhooks/mta",
        413: "raise RECEIVER_MAX_BODY_BYTES, or the proxy's body limit (client_max_body_size)",
        503: "the receiver there cannot write to its database: run doctor on that host",
    }
    return fixes.get(status, "MTA counts only 200 as delivered: see the receiver's logs")
