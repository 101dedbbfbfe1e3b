"""What the operator commands print: cuts said out loud, numbers masked, unknown filter
values refused, confirmation before a replay, progress while waiting."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from receiver.cli import main
from receiver.settings import Settings

from ..conftest import SECRET, delivery, make_settings, running, wait_for
from .test_cli import counting_registry, seed


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI's environment, pointing at the same SQLite file as the returned settings."""
    settings = make_settings(tmp_path, max_attempts=1)
    monkeypatch.setenv("RECEIVER_WEBHOOK_SECRETS", SECRET)
    monkeypatch.setenv("RECEIVER_DATABASE_URL", settings.database_url)
    return settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of one command run in-process."""
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_cut_list_says_so(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """A list stopped by --limit says so on stderr with how to see more; a whole one not."""
    seed(env, counting_registry()[0])
    status, out, err = run(capsys, "events", "list", "--limit", "2")
    assert status == 0
    assert len(out.splitlines()) == 3  # header and two rows
    assert "only the first 2 shown: more match; --limit 20" in err
    assert run(capsys, "events", "list", "--limit", "3")[2] == ""
    rows = json.loads(run(capsys, "events", "list", "--limit", "2", "--json")[1])
    assert len(rows) == 2


def test_unknown_type_is_an_error(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped --type exits 2 naming the value, instead of answering (none)."""
    seed(env, counting_registry()[0])
    with pytest.raises(SystemExit) as exited:
        main(["events", "list", "--type", "delivery-statuss"])
    assert exited.value.code == 2
    assert "unknown event type 'delivery-statuss'" in capsys.readouterr().err


def test_numbers_are_masked_unless_asked(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Lists and the raw body mask phone numbers like the logs; --show-numbers shows them."""
    ids = seed(env, counting_registry()[0])
    _, out, _ = run(capsys, "events", "list")
    assert "+1555" not in out
    assert "***67" in out
    assert "+15551234567" in run(capsys, "events", "list", "--show-numbers")[1]
    _, shown, _ = run(capsys, "events", "show", str(ids[1]))
    assert "5551234567" not in shown
    assert '"destinationNumber": "***67"' in shown
    assert "+15551234567" in run(capsys, "events", "show", str(ids[1]), "--show-numbers")[1]


def test_replay_counts_and_asks(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """replay shows at most 20 rows and the count, asks (no: nothing changes), refuses
    without a terminal unless --yes, and reports progress page by page."""
    registry, _ = counting_registry()
    with running(env, registry) as server:
        for message_id in range(25):
            server.post(delivery(1000 + message_id, 6))
        wait_for(lambda: not server.query("SELECT 1 FROM events WHERE state = 'pending'"))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    status, out, err = run(capsys, "replay", "--status", "6")
    assert status == 2
    assert "replay 25 event(s): pass --yes to confirm (no terminal to ask)" in err
    assert "... and 5 more" in out
    assert len(out.splitlines()) == 22  # header, 20 rows, the rest counted

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    status, out, _ = run(capsys, "replay", "--status", "6")
    assert status == 1
    assert out.endswith("replay 25 event(s)? [y/N] nothing replayed\n")
    monkeypatch.setattr("receiver.cli.events.PAGE", 10)
    status, out, err = run(capsys, "replay", "--status", "6", "--yes")
    assert (status, out.splitlines()[-1]) == (0, "replayed 25 event(s)")
    assert err.splitlines() == [
        "replayed 10 of 25",
        "replayed 20 of 25",
        "replayed 25 of 25",
    ]


def test_purge_and_doctor_report_progress(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """purge names each table as it goes; doctor --url says what it waits for first."""
    seed(env, counting_registry()[0])
    status, _, err = run(capsys, "purge", "--older-than", "30d")
    assert status == 0
    assert err.splitlines()[0] == "purging table by table ..."
    assert [line.split(":")[0].strip() for line in err.splitlines()[1:]] == [
        "events",
        "sent_messages",
        "resends",
        "messages",
    ]
    _, _, err = run(capsys, "doctor", "--url", "http://127.0.0.1:1/webhooks/mta")
    assert "sending a signed test webhook to http://127.0.0.1:1/webhooks/mta" in err


def test_inputs_no_check_foresaw_still_end_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 30-digit id is a usage error; a file that is not the receiver's database, or a
    URL httpx cannot parse, is one line naming the problem, never a traceback."""
    with pytest.raises(SystemExit) as usage:
        main(["events", "show", "9" * 30])
    assert usage.value.code == 2
    assert "invalid id value" in capsys.readouterr().err
    monkeypatch.setenv("RECEIVER_WEBHOOK_SECRETS", SECRET)
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    monkeypatch.setenv("RECEIVER_DATABASE_URL", f"sqlite:///{foreign}")
    assert main(["events", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert main(["trigger", "message-reply", "--url", "http://[::1"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip()
