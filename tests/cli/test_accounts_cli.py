"""``--account`` on the operator commands, with the environment's account and a file's
(docs/accounts.md): listings filtered, per-account resends acted on separately,
registrations made with the account's key, URL and secret, unknown names refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.cli import main
from receiver.fake_mta import FakeMTA, running_fake_mta
from receiver.mta.events import DEFAULT_ACCOUNT
from receiver.store import create_store
from receiver.web.incoming import incoming_from

from ..conftest import SECRET, cli, delivery, encode, fake_mta_env, run_async

B_SECRET = "b" * 40 + "-brand-b-secret"
B_KEY = "brand-b-api-key"
URL = "https://receiver.example.com/webhooks/mta"


def accounts_file(tmp_path: Path, base_url: str = "http://127.0.0.1:1/v3") -> str:
    """An accounts file (mode 600) with one account, ``brand-b``."""
    path = tmp_path / "accounts.toml"
    path.write_text(
        f'[accounts.brand-b]\nwebhook_secrets = ["{B_SECRET}"]\n'
        f'mta_api_key = "{B_KEY}"\nmta_base_url = "{base_url}"\n'
    )
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeMTA, FakeMTA]]:
    """The default account's fake MTA and brand-b's, each checking its own API key; the
    CLI's environment names both accounts."""
    other = FakeMTA(api_key=B_KEY)
    with (
        fake_mta_env(monkeypatch, f"sqlite:///{tmp_path / 'r.db'}") as ours,
        running_fake_mta(other) as other_url,
    ):
        monkeypatch.setenv("RECEIVER_ACCOUNTS_FILE", accounts_file(tmp_path, other_url))
        yield ours, other


def fill(database_url: str, work: Any) -> None:
    """Run ``work(store)`` on the (created, migrated) store."""

    async def run() -> None:
        store = create_store(database_url)
        await store.open()
        try:
            await work(store)
        finally:
            await store.close()

    run_async(run())


def cli_err(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run a command; its exit status and what it printed on stderr."""
    capsys.readouterr()
    status = main(list(argv))
    return status, capsys.readouterr().err


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    status, out = cli(capsys, *argv, "--json")
    assert status == 0, out
    return json.loads(out)


def test_events_filtered_by_account(
    fakes: tuple[FakeMTA, FakeMTA], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same message in two accounts: listed twice with the account column, once
    with --account; show refuses another account's event."""
    same = encode(delivery(555, status=4))

    async def work(store: Any) -> None:
        await store.ingest(incoming_from(same, time.time(), 0))
        await store.ingest(incoming_from(same, time.time(), 0, account="brand-b"))

    fill(f"sqlite:///{tmp_path / 'r.db'}", work)
    both = cli_json(capsys, "events", "list")
    assert sorted(row["account"] for row in both) == ["brand-b", DEFAULT_ACCOUNT]
    status, out = cli(capsys, "events", "list")
    assert status == 0
    assert out.splitlines()[0].split()[:2] == ["ID", "ACCOUNT"]
    [theirs] = cli_json(capsys, "events", "list", "--account", "brand-b")
    assert (theirs["account"], theirs["message_id"]) == ("brand-b", "555")
    ours = next(row["id"] for row in both if row["account"] == DEFAULT_ACCOUNT)
    assert cli(capsys, "events", "show", str(ours), "--account", "brand-b")[0] == 1
    assert cli_json(capsys, "events", "show", str(ours))["account"] == DEFAULT_ACCOUNT


def test_resends_of_one_message_id_per_account(
    fakes: tuple[FakeMTA, FakeMTA], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Message 42 has an unknown resend in each account: show lists both, send without
    --account refuses (exit 2, naming them), with --account acts on that one only."""

    async def work(store: Any) -> None:
        for account in (DEFAULT_ACCOUNT, "brand-b"):
            await store.resends.schedule(
                original_message_id="42",
                phone="+15550001111",
                tags={},
                original_external_id=None,
                failure_status=6,
                failed_at=time.time(),
                due_at=time.time(),
                now=time.time(),
                account=account,
            )
            await store.resends.transition(
                "42", "unknown", from_=("scheduled",), now=time.time(), account=account
            )

    fill(f"sqlite:///{tmp_path / 'r.db'}", work)
    shown = cli_json(capsys, "resends", "show", "42")
    assert [(r["account"], r["state"]) for r in shown] == [
        (DEFAULT_ACCOUNT, "unknown"),
        ("brand-b", "unknown"),
    ]
    status, err = cli_err(capsys, "resends", "send", "42")
    assert status == 2
    assert "accounts default, brand-b: pass --account" in err
    sent = cli_json(capsys, "resends", "send", "42", "--account", "brand-b")
    assert (sent["account"], sent["state"], sent["changed"]) == ("brand-b", "scheduled", True)
    dropped = cli_json(capsys, "resends", "drop", "42", "--account", "default")
    assert (dropped["account"], dropped["state"]) == (DEFAULT_ACCOUNT, "cancelled")
    [listed] = cli_json(capsys, "resends", "list", "--account", "brand-b")
    assert listed["state"] == "scheduled"


def test_webhooks_register_as_each_account(
    fakes: tuple[FakeMTA, FakeMTA], capsys: pytest.CaptureFixture[str]
) -> None:
    """register --account brand-b calls brand-b's MTA with its key and registers
    /webhooks/mta/brand-b with its secret; without --account, the default's as before."""
    ours, theirs = fakes
    assert cli(capsys, "webhooks", "register", "--url", URL, "--account", "brand-b")[0] == 0
    assert cli(capsys, "webhooks", "register", "--url", URL, "--events", "message-reply")[0] == 0

    assert {(h.url.split("?")[0], h.secret) for h in theirs.webhooks} == {
        (f"{URL}/brand-b", B_SECRET)
    }
    assert len(theirs.webhooks) == 4
    assert [(h.url, h.secret) for h in ours.webhooks] == [(f"{URL}?event=message-reply", SECRET)]
    listed = cli_json(capsys, "webhooks", "list", "--account", "brand-b")
    assert len(listed) == 4
    status, _ = cli(
        capsys, "webhooks", "register", "--url", f"{URL}/brand-b", "--account", "default"
    )
    assert status == 2  # another account's path: every webhook would be a 401


def test_send_as_another_account_is_recorded_as_its_own(
    fakes: tuple[FakeMTA, FakeMTA], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """send --account brand-b goes with brand-b's key to its MTA, and its text and route
    are kept as brand-b's message (the fallback reads them per account)."""
    ours, theirs = fakes
    argv = ("send", "--to", "+15551234567", "--text", "hi", "--sender-name", "Acme")
    status, out = cli(capsys, *argv, "--account", "brand-b")  # prints JSON itself
    assert status == 0, out
    sent = json.loads(out)
    assert (len(ours.sends), len(theirs.sends)) == (0, 1)
    assert theirs.sends[0].api_key == B_KEY

    async def check(store: Any) -> None:
        mid = str(sent["messageId"])
        assert await store.resends.sent_message(mid, "brand-b") == ("hi", "Acme")
        assert await store.resends.sent_message(mid) is None

    fill(f"sqlite:///{tmp_path / 'r.db'}", check)


def test_unknown_account_is_a_usage_error(
    fakes: tuple[FakeMTA, FakeMTA], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown --account: exit 2 and one line naming the accounts, for reading,
    store and MTA commands alike."""
    for argv in (
        ("events", "list", "--account", "nope"),
        ("dead-letters", "retry", "--all", "--account", "nope"),
        ("webhooks", "list", "--account", "nope"),
    ):
        status, err = cli_err(capsys, *argv)
        assert status == 2, argv
        assert len(err.strip().splitlines()) == 1
        assert "'nope'" in err
        assert "default, brand-b" in err


def test_several_accounts_without_default_need_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With two file accounts and no environment account, an MTA command without
    --account names them and exits 2."""
    path = tmp_path / "accounts.toml"
    path.write_text(
        f'[accounts.brand-b]\nwebhook_secrets = ["{B_SECRET}"]\nmta_api_key = "k"\n'
        '[accounts.brand-c]\nwebhook_secrets = ["c-secret-0123456789abcdef"]\n'
    )
    path.chmod(0o600)
    monkeypatch.delenv("RECEIVER_WEBHOOK_SECRETS", raising=False)
    monkeypatch.setenv("RECEIVER_ACCOUNTS_FILE", str(path))
    monkeypatch.setenv("RECEIVER_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    assert cli_err(capsys, "webhooks", "list") == (
        2,
        "mta-receiver: configuration error: several accounts and none is the environment's:"
        " pass --account, one of brand-b, brand-c\n",
    )
    status, err = cli_err(capsys, "webhooks", "list", "--account", "brand-c")
    assert (status, "no mta_api_key" in err) == (2, True)
