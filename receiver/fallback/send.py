"""Our own send path: send through MTA and keep the text and route.

MTA's ``message-send`` webhook may lack the text (its fields are undocumented, docs/mta.md), so
messages sent here are recorded; the fallback then knows what to resend and that the
message went out on the iMessage route (``sender_name`` set).
"""

from __future__ import annotations

import time
import uuid

from ..mta import MTAClient, SendResult
from ..mta.events import DEFAULT_ACCOUNT
from ..store import Store


async def send_message(
    client: MTAClient,
    store: Store,
    *,
    to: str,
    text: str,
    sender_name: str | None = None,
    external_id: str | None = None,
    tags: dict[str, str] | None = None,
    account: str = DEFAULT_ACCOUNT,
) -> SendResult:
    """Send ``text`` to one number (iMessage when ``sender_name`` is set) with
    ``account``'s client, and record it as that account's."""
    payload: dict[str, object] = {"subscribers": [to], "message": text}
    if sender_name:
        payload["senderName"] = sender_name
    if external_id:
        payload["externalId"] = external_id
    if tags:
        payload["tags"] = tags
    result = await client.send(payload, request_id=uuid.uuid4().hex)
    if result.message_id is not None:
        await store.resends.record_sent(
            message_id=result.message_id,
            external_id=external_id,
            phone=to,
            text=text,
            sender_name=sender_name,
            tags=tags or {},
            now=time.time(),
            account=account,
        )
    return result
