"""``trigger``: post a realistic signed sample webhook to a running receiver.

The newcomer's first webhook (like ``stripe trigger``): no HMAC code to write. The
bodies follow the fields MTA documents or integrations show (docs/mta.md); the
numbers are from the 555-01xx range, reserved for fiction.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import httpx

from ..errors import ReceiverError
from ..mta.events import DEFAULT_ACCOUNT
from ..web.verify import sign
from .accounts import add_account, calling, webhook_url
from .common import load_settings, require

DEFAULT_URL = "http://127.0.0.1:8000/webhooks/mta"
SUBSCRIBER = "+15555550123"
OUR_NUMBER = "+15555550100"
EVENTS = ("delivery-status", "message-reply", "message-send", "number-opt-in")


def register(commands: Any) -> None:
    """Add ``trigger``."""
    trigger_ = commands.add_parser(
        "trigger", help="post a signed sample webhook to a running receiver"
    )
    trigger_.add_argument("event", choices=EVENTS, help="the kind of webhook to send")
    trigger_.add_argument(
        "--status",
        type=int,
        help="delivery-status only: MTA's status code (4 delivered, 6 failed ...; default 4)",
    )
    trigger_.add_argument(
        "--message-id",
        type=int,
        help="delivery-status and message-send: MTA's messageId (default: a random one)",
    )
    trigger_.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"the receiver's webhook URL (default {DEFAULT_URL}); ?event=EVENT is added",
    )
    add_account(trigger_, calls_mta=True)
    trigger_.set_defaults(func=trigger)


def sample(event: str, status: int, message_id: int) -> dict[str, Any]:
    """A body shaped like the one MTA sends for ``event``."""
    if event == "delivery-status":
        return {
            "destinationNumber": SUBSCRIBER,
            "messageId": message_id,
            "externalId": f"order-{message_id}",
            "status": status,
            "tags": {"source": "mta-receiver trigger"},
            "senderName": "Acme",
        }
    if event == "message-reply":
        return {
            "fromNumber": SUBSCRIBER,  # the subscriber who replied
            "toNumber": OUR_NUMBER,  # our number
            "message": "Yes, see you at 3",
            "replyId": random.randrange(10**8, 10**9),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tags": {"source": "mta-receiver trigger"},
        }
    if event == "message-send":
        return {
            "messageId": message_id,
            "externalId": f"order-{message_id}",
            "destinationNumber": SUBSCRIBER,
            "message": "Your order shipped",
            "tags": {"source": "mta-receiver trigger"},
        }
    return {"optInType": "imessage", "fromNumber": SUBSCRIBER}


def trigger(args: argparse.Namespace) -> int:
    """Sign a sample body with the account's first webhook secret, post it to the
    account's URL, print the answer."""
    require(
        args.status is None or args.event == "delivery-status",
        "--status is for delivery-status webhooks only",
    )
    account = calling(load_settings(), args.account)
    message_id = args.message_id or random.randrange(10**8, 10**9)
    status = 4 if args.status is None else args.status
    body = json.dumps(sample(args.event, status, message_id)).encode()
    url = f"{webhook_url(args.url.split('?', 1)[0], account.name)}?event={args.event}"
    headers = {
        "X-Signature": sign(account.webhook_secrets[0].reveal(), body),
        "Content-Type": "application/json",
        "User-Agent": "mta-receiver trigger",
    }
    print(f"POST {url}")
    print(body.decode())
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise ReceiverError(
            f"no answer from {url} ({type(exc).__name__}): is `mta-receiver serve` running there?"
        ) from None
    answer = f"{response.status_code} {response.reason_phrase} {response.text.strip()}"
    print(answer.rstrip())
    if response.status_code == 200:
        print("stored: see it with `mta-receiver events list`")
    elif response.status_code == 401:
        where = (
            "RECEIVER_WEBHOOK_SECRETS"
            if account.name == DEFAULT_ACCOUNT
            else f"webhook_secrets of account {account.name}"
        )
        print(f"401: the receiver's {where} differ from this shell's")
    return 0 if response.status_code == 200 else 1
