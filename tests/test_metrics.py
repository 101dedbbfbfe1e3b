"""``GET /metrics`` after real traffic: every metric of the issue, with its labels."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from receiver import Context, Event, Registry
from receiver.accounts import Account
from receiver.gauges import StoreGauges
from receiver.secret import Secret
from receiver.store import Incoming, create_store

from .conftest import (
    OLD_SECRET,
    SECRET,
    delivery,
    encode,
    make_settings,
    run_async,
    running,
    signed_headers,
    wait_for,
)
from .fallback.test_fallback import fallback

BRAND_SECRET = "2" * 64
Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(text: str) -> Samples:
    """Samples by name: ``{name: [(labels, value), ...]}``."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` carrying ``labels``."""
    found = [v for got, v in samples.get(name, []) if labels.items() <= got.items()]
    assert found, f"no {name}{labels} in {sorted(samples)}"
    return sum(found)


def test_metrics_after_traffic(tmp_path: Path) -> None:
    """Intake, handlers, resends, MTA calls and the store gauges all show up, labelled."""
    with fallback(tmp_path) as s:
        mid = s.play([3, 6])  # message-send, SENT, DELIVERY_FAILED: one SMS resend
        s.wait_state(mid, "sent")
        s.play([6], message_id=mid, include_send=False)  # a duplicate
        assert s.server.post(delivery(), secret="wrong").status_code == 401
        assert s.server.post(delivery(), secret=OLD_SECRET).status_code == 200
        s.settled()
        samples = scrape(s.server.client.get("/metrics").text)

    assert value(samples, "receiver_webhooks_received_total", event="delivery-status") >= 3
    assert value(samples, "receiver_webhooks_received_total", event="message-send") == 1
    assert value(samples, "receiver_webhooks_rejected_total", reason="bad_signature") == 1
    assert value(samples, "receiver_webhooks_duplicate_total", event="delivery-status") == 1
    assert value(samples, "receiver_handler_runs_total", outcome="done") >= 4
    handlers = {labels["handler"] for labels, _ in samples["receiver_handler_runs_total"]}
    assert any("fallback" in h for h in handlers), handlers
    assert value(samples, "receiver_handler_seconds_count") >= 4
    assert value(samples, "receiver_resends_total", state="sent") == 1
    assert value(samples, "receiver_resend_delay_seconds_count") == 1
    assert value(samples, "receiver_mta_calls_total", endpoint="POST /send", status="200") == 1
    assert "receiver_mta_rate_limit_wait_seconds_total" in samples
    assert "receiver_dead_letters_total" in samples
    # Store gauges, read at scrape time.
    assert value(samples, "receiver_store_gauges_up") == 1
    assert value(samples, "receiver_queue_depth") == 0
    assert value(samples, "receiver_queue_oldest_age_seconds") == 0
    assert value(samples, "receiver_dead_letter_events") == 0
    assert value(samples, "receiver_resends_by_state", state="sent") == 1


def test_store_gauges_read_the_backlog(tmp_path: Path) -> None:
    """Queue depth, oldest pending age and dead letters come from the store itself."""
    settings = make_settings(tmp_path)
    gauges = StoreGauges()
    now = time.time()

    async def work() -> None:
        store = create_store(settings.database_url)
        await store.open()
        for key, age in (("a", 120.0), ("b", 5.0), ("c", 60.0)):
            await store.ingest(Incoming(f"k:{key}", "unknown", "unknown", now - age, 0, b"{}"))
        await store.execute("UPDATE events SET state = 'dead' WHERE dedup_key = 'k:c'")
        await gauges.refresh(store, now=now)
        await store.close()
        await gauges.refresh(store, now=now)  # closed: the last figures stay, up drops

    run_async(work())
    samples = {s.name: s.value for m in gauges.collect() for s in m.samples}
    assert samples["receiver_queue_depth"] == 2
    assert samples["receiver_queue_oldest_age_seconds"] == 120.0
    assert samples["receiver_dead_letter_events"] == 1
    assert samples["receiver_store_gauges_up"] == 0


def test_mta_call_labels_have_no_ids() -> None:
    """PATCH /webhooks/11 is counted as PATCH /webhooks/{id}: bounded label values."""
    import httpx

    from receiver.mta import MTAClient, SlidingWindowLimiter
    from receiver.mta.ratelimit import Rate
    from receiver.settings import Secret

    calls: list[tuple[str, str]] = []
    client = MTAClient(
        Secret("k"),
        SlidingWindowLimiter(Rate(10, 1.0)),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})),
        on_call=lambda endpoint, status: calls.append((endpoint, status)),
    )

    async def work() -> None:
        await client.request("PATCH", "webhooks/11", json={})
        await client.request("GET", "webhooks")
        await client.aclose()

    asyncio.run(work())
    assert calls == [("PATCH /webhooks/{id}", "200"), ("GET /webhooks", "200")]


def test_account_label_holds_configured_accounts_only(tmp_path: Path) -> None:
    """Webhooks, duplicates, rejections and handler runs carry the account of the path
    they came to; a refusal before an account is known carries none, and a made-up
    name adds no series."""
    registry = Registry()

    @registry.on_any
    async def audit(event: Event, ctx: Context) -> None:
        pass

    brand = Account("brand-b", (Secret(BRAND_SECRET),))
    settings = make_settings(tmp_path, file_accounts=(brand,))
    with running(settings, registry) as server:

        def post(path: str, secret: str, message_id: int = 7) -> int:
            body = encode(delivery(message_id=message_id))
            answer = server.client.post(path, content=body, headers=signed_headers(body, secret))
            return answer.status_code

        assert post("/webhooks/mta", SECRET) == 200
        assert [post("/webhooks/mta/brand-b", BRAND_SECRET) for _ in range(2)] == [200, 200]
        assert post("/webhooks/mta/brand-b", SECRET) == 401  # the default account's secret
        assert post("/webhooks/mta/made-up", SECRET) == 404
        wait_for(
            lambda: server.query("SELECT count(*) FROM events WHERE state = 'done'")[0][0] == 2
        )
        text = server.client.get("/metrics").text
    samples = scrape(text)

    def at(name: str, **labels: str) -> float:
        return value(samples, name, **labels)

    assert at("receiver_webhooks_received_total", account="default") == 1
    assert at("receiver_webhooks_received_total", account="brand-b") == 1
    assert at("receiver_webhooks_duplicate_total", account="brand-b") == 1
    assert at("receiver_webhooks_rejected_total", reason="bad_signature", account="brand-b") == 1
    assert at("receiver_webhooks_rejected_total", reason="unknown_account", account="") == 1
    assert at("receiver_handler_runs_total", outcome="done", account="brand-b") == 1
    assert at("receiver_handler_runs_total", outcome="done", account="default") == 1
    accounts = {
        labels["account"]
        for name, rows in samples.items()
        for labels, _ in rows
        if "account" in labels
    }
    assert accounts == {"", "default", "brand-b"}
    assert "made-up" not in text
