"""``send``: our own send path, which records the text and route for the fallback."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ..settings import Settings
from .accounts import add_account, calling


def register(commands: Any) -> None:
    """Add ``send``."""
    send_ = commands.add_parser("send", help="send a message through MTA and record its text")
    send_.add_argument("--to", required=True, help="the recipient's number (E.164)")
    send_.add_argument("--text", required=True, help="the message")
    send_.add_argument("--sender-name", help="iMessage Sender Identity (iMessage route)")
    send_.add_argument("--external-id", help="your own id, echoed in MTA's webhooks")
    add_account(send_, calls_mta=True)
    send_.set_defaults(func=send)


def send(args: argparse.Namespace) -> int:
    """Send one message through MTA, record its text and route, print MTA's answer."""
    from ..fallback.send import send_message
    from ..metrics import Metrics
    from ..services import mta_client
    from ..store import create_store

    settings = Settings.from_env()
    account = calling(settings, args.account).name

    async def run() -> dict[str, object]:
        store = create_store(settings.database_url)
        await store.open()
        try:
            # Built inside the try: a missing API key raises here, and an unclosed store's
            # thread would keep the process alive after the error was printed.
            client = mta_client(settings, Metrics(), store, account)
        except BaseException:
            await store.close()
            raise
        try:
            result = await send_message(
                client,
                store,
                to=args.to,
                text=args.text,
                sender_name=args.sender_name,
                external_id=args.external_id,
                account=account,
            )
        finally:
            await client.aclose()
            await store.close()
        return {
            "messageId": result.message_id,
            "totalSent": result.total_sent,
            "requestId": result.request_id,
        }

    print(json.dumps(asyncio.run(run())))
    return 0
