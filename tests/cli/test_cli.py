"""The operator commands (events, replay, dead-letters, resends, purge), run in-process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from receiver import Context, Event, Registry
from receiver.cli import main
from receiver.settings import Settings
from receiver.store import Incoming, create_store
from receiver.store.migrate import migrations
from receiver.store.resends import Resends
from receiver.web.incoming import incoming_from

from ..conftest import (
    SECRET,
    cli,
    delivery,
    encode,
    make_settings,
    run_async,
    running,
    schedule_resend,
    wait_for,
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI's environment, pointing at the same SQLite file as the returned settings."""
    settings = make_settings(tmp_path, max_attempts=1)
    monkeypatch.setenv("RECEIVER_WEBHOOK_SECRETS", SECRET)
    monkeypatch.setenv("RECEIVER_DATABASE_URL", settings.database_url)
    return settings


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run a command with ``--json`` and parse what it printed."""
    status, out = cli(capsys, *argv, "--json")
    assert status == 0, out
    return json.loads(out)


def counting_registry(fail: str | None = None) -> tuple[Registry, list[int]]:
    """A registry recording each event id it handles; it fails on events named ``fail``."""
    registry, seen = Registry(), []

    @registry.on_any
    async def record(event: Event, ctx: Context) -> None:
        assert event.id is not None
        seen.append(event.id)
        if event.name == fail:
            raise RuntimeError("handler broke")

    return registry, seen


def seed(settings: Settings, registry: Registry) -> list[int]:
    """Three events through HTTP: two statuses of one message, one reply; all handled."""
    reply = {"fromNumber": "+15559876543", "message": "hi", "replyId": 77}
    with running(settings, registry) as server:
        ids = [
            int(server.post(delivery(1, 3)).headers["x-receiver-event-id"]),
            int(server.post(delivery(1, 6)).headers["x-receiver-event-id"]),
            int(server.post(reply, event="message-reply").headers["x-receiver-event-id"]),
        ]
        wait_for(lambda: not server.query("SELECT 1 FROM events WHERE state = 'pending'"))
    return ids


def test_events_list_filters(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """events list narrows by type, status, number, state and age, newest first."""
    registry, _ = counting_registry()
    ids = seed(env, registry)
    rows = cli_json(capsys, "events", "list")
    assert [r["id"] for r in rows] == ids[::-1]
    assert [r["id"] for r in cli_json(capsys, "events", "list", "--status", "6")] == [ids[1]]
    assert [r["id"] for r in cli_json(capsys, "events", "list", "--type", "message-reply")] == [
        ids[2]
    ]
    by_name = cli_json(capsys, "events", "list", "--type", "delivery-status.sent")
    assert [r["id"] for r in by_name] == [ids[0]]
    assert len(cli_json(capsys, "events", "list", "--number", "(555) 123-4567")) == 2
    assert cli_json(capsys, "events", "list", "--state", "dead") == []
    assert len(cli_json(capsys, "events", "list", "--since", "1h", "--limit", "2")) == 2
    status, table = cli(capsys, "events", "list", "--state", "done")
    assert status == 0
    assert table.splitlines()[0].split()[:3] == ["ID", "NAME", "MESSAGE_ID"]
    assert len(table.splitlines()) == 4


def test_events_show(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """events show prints the row, its handler runs and the raw body; unknown id exits 1."""
    registry, _ = counting_registry()
    ids = seed(env, registry)
    shown = cli_json(capsys, "events", "show", str(ids[1]))
    assert shown["state"] == "done"
    assert [r["state"] for r in shown["handler_runs"]] == ["done"]
    assert json.loads(shown["raw"])["status"] == 6
    status, out = cli(capsys, "events", "show", str(ids[1]))
    assert status == 0
    assert "handler runs:" in out
    assert '"status": 6' in out
    assert cli(capsys, "events", "show", "9999")[0] == 1


def test_replay(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """replay --dry-run changes nothing; replay re-runs every handler of the chosen events."""
    registry, seen = counting_registry()
    ids = seed(env, registry)
    dry = cli_json(capsys, "replay", "--status", "6", "--dry-run")
    assert dry["dry_run"] is True
    assert [e["id"] for e in dry["events"]] == [ids[1]]
    assert cli_json(capsys, "events", "show", str(ids[1]))["state"] == "done"

    status, out = cli(capsys, "replay", "--id", str(ids[1]), "--yes")
    assert status == 0
    assert "replayed 1 event(s)" in out
    replayed = cli_json(capsys, "events", "show", str(ids[1]))
    assert replayed["state"] == "pending"
    assert replayed["handler_runs"] == []
    with running(env, registry):
        wait_for(lambda: seen.count(ids[1]) == 2)
    assert seen.count(ids[0]) == 1

    assert cli(capsys, "replay")[0] == 2  # everything at once needs a filter
    assert cli(capsys, "replay", "--id", "9999")[0] == 1


def test_dead_letters(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """dead-letters list shows the last error; retry re-runs only the failed handlers."""
    registry, seen = counting_registry(fail="delivery-status.delivery-failed")
    ids = seed(env, registry)
    dead = cli_json(capsys, "dead-letters", "list")
    assert [d["id"] for d in dead] == [ids[1]]
    assert dead[0]["last_error"].endswith("record: RuntimeError: handler broke")
    assert cli_json(capsys, "dead-letters", "retry", str(ids[1])) == {"retried": [ids[1]]}
    assert cli_json(capsys, "events", "show", str(ids[1]))["state"] == "pending"
    assert cli(capsys, "dead-letters", "retry", str(ids[0]))[0] == 1  # done, not dead
    with running(env, registry):
        wait_for(lambda: seen.count(ids[1]) == 2)
    status, out = cli(capsys, "dead-letters", "retry", "--all")
    assert (status, out.strip()) == (0, f"retrying 1 event(s): {ids[1]}")


def test_resends_send_and_drop(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """resends send re-schedules an unknown resend; drop cancels; others exit 1."""

    async def work() -> None:
        store = create_store(env.database_url)
        await store.open()
        now = time.time()
        for original, state in (("m1", "unknown"), ("m2", "unknown"), ("m3", "sent")):
            await schedule_resend(store, original, phone="+15551234567", at=now, state=state)
        await store.close()

    run_async(work())
    listed = cli_json(capsys, "resends", "list", "--state", "unknown")
    assert sorted(r["original_message_id"] for r in listed) == ["m1", "m2"]
    assert cli_json(capsys, "resends", "send", "m1")["state"] == "scheduled"
    assert cli_json(capsys, "resends", "drop", "m2")["state"] == "cancelled"
    status, out = cli(capsys, "resends", "send", "m3")
    assert (status, out.strip()) == (1, "resend of m3 is sent: cannot send it")
    assert cli(capsys, "resends", "drop", "nope")[0] == 1


def test_purge(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """purge deletes old finished events and blanks old phone numbers (sends, messages);
    never pending events, recent messages or opt-outs."""
    old = time.time() - 40 * 86400

    async def work() -> None:
        store = create_store(env.database_url)
        await store.open()
        for key, received, state in (
            ("a", old, "done"),
            ("b", old, "pending"),
            ("c", None, "done"),
        ):
            await store.ingest(
                Incoming(f"k:{key}", "unknown", "unknown", received or time.time(), 0, b"{}")
            )
            await store.execute(
                "UPDATE events SET state = ? WHERE dedup_key = ?", (state, f"k:{key}")
            )
        await Resends(store).record_sent(
            message_id="9",
            external_id=None,
            phone="+15551234567",
            text="secret text",
            sender_name=None,
            tags={},
            now=old,
        )
        for message_id, received in ((71, old), (72, time.time())):
            await store.ingest(incoming_from(encode(delivery(message_id)), received, 0))
        await Resends(store).opt_out("+15557654321", "reply_stop", old)
        await store.close()

    async def phones() -> list[tuple[Any, ...]]:
        store = create_store(env.database_url)
        await store.open()
        try:
            return [
                *await store.fetch("SELECT message_id, phone FROM messages ORDER BY message_id"),
                ("opted out", await Resends(store).opted_out("+15557654321")),
            ]
        finally:
            await store.close()

    run_async(work())
    dry = cli_json(capsys, "purge", "--older-than", "30d", "--dry-run")
    assert dry == {"dry_run": True, "events": 1, "sent_messages": 1, "resends": 0, "messages": 1}
    assert len(cli_json(capsys, "events", "list")) == 5
    status, out = cli(capsys, "purge", "--older-than", "30d")
    assert status == 0
    assert out.startswith("deleted 1 event(s)")
    left = cli_json(capsys, "events", "list")
    assert sorted(r["state"] for r in left) == ["done", "pending", "pending", "pending"]
    assert cli_json(capsys, "purge", "--older-than", "30d")["sent_messages"] == 0
    assert run_async(phones()) == [
        ("71", None),
        ("72", "+15551234567"),
        ("opted out", True),
    ]


def test_config_error_exits_2(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a webhook secret the commands that change the store refuse with exit 2."""
    monkeypatch.delenv("RECEIVER_WEBHOOK_SECRETS")
    assert main(["purge", "--older-than", "30d"]) == 2
    assert "RECEIVER_WEBHOOK_SECRETS" in capsys.readouterr().err


def test_db_status_and_upgrade(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """A fresh database: status lists every migration pending (exit 1 with --check),
    upgrade applies them all and names each, then status is up to date."""
    shipped = len(migrations("sqlite"))
    Path(env.database_url.removeprefix("sqlite:///")).touch()  # an empty SQLite database
    status, out = cli(capsys, "db", "status", "--check")
    assert status == 1
    assert out.splitlines()[0] == "store: sqlite"
    assert out.count(" pending") == shipped + 1  # each line, then "N pending"
    assert out.splitlines()[-1] == f"{shipped} pending"

    status, out = cli(capsys, "db", "upgrade")
    assert status == 0
    assert [line.split("_")[0] for line in out.splitlines()[:-1]] == [
        f"applied {m.version:04d}" for m in migrations("sqlite")
    ]
    assert out.splitlines()[-1] == f"sqlite: schema at version {shipped:04d}"

    status, out = cli(capsys, "db", "status", "--check", "--json")
    assert status == 0
    found = json.loads(out)
    assert found["store"] == "sqlite"
    assert [m["applied_at"] is not None for m in found["migrations"]] == [True] * shipped
    status, out = cli(capsys, "db", "status")
    assert (status, out.splitlines()[-1]) == (0, "up to date")
    assert all(" applied 20" in line for line in out.splitlines()[1:-1])
