"""``doctor`` against a running receiver and the fake MTA: all OK, then with problems."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.cli.doctor import autovacuum
from receiver.cli.pgcheck import connections, durability
from receiver.fake_mta import FakeMTA, running_fake_mta
from receiver.settings import Settings

from ..conftest import cli, fake_mta_env, free_port, make_settings, running
from ..pg import fresh_database_sync, query


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fake MTA and the doctor's environment: same database as the returned settings."""
    settings = make_settings(tmp_path)
    with fake_mta_env(monkeypatch, settings.database_url):
        yield settings


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``mta-receiver doctor argv``; its exit status and stdout."""
    return cli(capsys, "doctor", *argv)


def test_all_ok(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A healthy deployment: every check OK and the test event is in the store."""
    monkeypatch.setenv("RECEIVER_FALLBACK_LONGCODE_ID", "4242")
    with running(env) as server:
        status, out = doctor(capsys, "--url", f"{server.url}/webhooks/mta", "--json")
        checks = {c["name"]: c for c in json.loads(out)}
        stored = server.query("SELECT type, body FROM events")
    assert status == 0, out
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert set(checks) == {
        "configuration",
        "migrations",
        "database writes",
        "MTA API key",
        "proxy headers",
        "body limit",
        "SMS resend longcode",
        "public URL",
    }
    assert "RECEIVER_FORWARDED_ALLOW_IPS=127.0.0.1" in checks["proxy headers"]["detail"]
    assert [(kind, json.loads(body)["type"]) for kind, body in stored] == [
        ("unknown", "receiver-test")
    ]


def test_problems_are_printed_with_fixes(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad key, an unreachable URL and a tiny body limit: exit 1, each with its fix."""
    monkeypatch.setenv("RECEIVER_MTA_API_KEY", "not-the-key")
    monkeypatch.setenv("RECEIVER_MAX_BODY_BYTES", "1024")
    status, out = doctor(capsys, "--url", f"http://127.0.0.1:{free_port()}/webhooks/mta")
    assert status == 1
    lines = out.splitlines()
    key = lines.index("[FAIL] MTA API key: MTA rejected the key")
    assert lines[key + 1].strip().startswith("fix: set RECEIVER_MTA_API_KEY")
    url = next(i for i, line in enumerate(lines) if line.startswith("[FAIL] public URL"))
    assert "no answer from" in lines[url]
    assert lines[url + 1].strip().startswith("fix: check that the receiver runs")
    assert any(line.startswith("[WARN] body limit: 1024 bytes") for line in lines)
    assert "not-the-key" not in out


def test_resends_without_a_longcode_are_flagged(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resends on without RECEIVER_FALLBACK_LONGCODE_ID: a warning with the fix; off: skip."""
    _status, out = doctor(capsys, "--json")
    check = next(c for c in json.loads(out) if c["name"] == "SMS resend longcode")
    assert check["status"] == "warn"
    assert "default number" in check["detail"]
    assert check["fix"] == "set RECEIVER_FALLBACK_LONGCODE_ID"
    monkeypatch.setenv("RECEIVER_FALLBACK", "off")
    _status, out = doctor(capsys, "--json")
    check = next(c for c in json.loads(out) if c["name"] == "SMS resend longcode")
    assert check["status"] == "skip"


def test_wrong_secret_at_the_url(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A receiver that does not accept our first secret: 401, and the fix names the secrets."""
    (tmp_path / "other").mkdir()
    only_old = env.webhook_secrets[1:]  # OLD_SECRET; the doctor signs with SECRET
    other = make_settings(tmp_path / "other", webhook_secrets=only_old)
    with running(other) as server:
        status, out = doctor(capsys, "--url", f"{server.url}/webhooks/mta")
    assert status == 1
    assert "answered 401" in out
    assert "RECEIVER_WEBHOOK_SECRETS" in out


def test_settings_that_do_not_load(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings that do not load: the problem is printed and the exit status is 2."""
    monkeypatch.setenv("RECEIVER_MAX_ATTEMPTS", "many")
    status, out = doctor(capsys)
    assert status == 2
    assert "[FAIL] configuration: RECEIVER_MAX_ATTEMPTS must be an integer" in out


@pytest.mark.postgres
def test_postgres_autovacuum_is_reported_as_the_server_has_it(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the doctor reads autovacuum: off is a warning with its fix (this
    machine's server runs with it off), on is OK."""
    with fresh_database_sync() as url:
        monkeypatch.setenv("RECEIVER_DATABASE_URL", url)
        _, out = doctor(capsys)
        [(setting,)] = query(url, "SHOW autovacuum")
    line = next(line for line in out.splitlines() if "] autovacuum:" in line)
    if setting == "on":
        assert line == "[  OK] autovacuum: on"
    else:
        assert line.startswith("[WARN] autovacuum: autovacuum off: finished events leave dead")
        assert "ALTER SYSTEM SET autovacuum = on" in out


class _Settings:
    """A store stand-in answering its autovacuum settings from a dict (or failing)."""

    def __init__(self, values: dict[str, str] | None) -> None:
        self.values = values

    async def vacuum_settings(self) -> dict[str, str] | None:
        if self.values is None:
            raise OSError("connection lost")
        return dict(self.values)


@pytest.mark.parametrize(
    ("values", "status", "detail", "fix"),
    [
        ({"autovacuum": "on", "track_counts": "on"}, "ok", "on", None),
        (
            {"autovacuum": "off", "track_counts": "on"},
            "warn",
            "autovacuum off: finished events",
            "ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();",
        ),
        (
            {"autovacuum": "on", "track_counts": "off"},
            "warn",
            "track_counts off: finished events",
            "ALTER SYSTEM SET track_counts = on; SELECT pg_reload_conf();",
        ),
        (None, "warn", "cannot read: OSError: connection lost", None),
    ],
)
def test_autovacuum_check_says_what_is_off_and_how_to_turn_it_on(
    values: dict[str, str] | None, status: str, detail: str, fix: str | None
) -> None:
    """Each of autovacuum and track_counts off is a warning naming it, with its fix."""
    check = asyncio.run(autovacuum(_Settings(values)))  # type: ignore[arg-type]
    assert (check.name, check.status) == ("autovacuum", status)
    assert check.detail.startswith(detail)
    assert (check.fix or "").startswith(fix or "")
    assert (check.fix is None) == (fix is None)


@pytest.mark.postgres
def test_postgres_connections_and_durability_are_reported_as_the_server_has_them(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the doctor reads max_connections and synchronous_commit from the
    server: its lines name the server's own values."""
    with fresh_database_sync() as url:
        monkeypatch.setenv("RECEIVER_DATABASE_URL", url)
        _, out = doctor(capsys)
        [(maximum,)] = query(url, "SHOW max_connections")
        [(reserved,)] = query(url, "SHOW superuser_reserved_connections")
        [(commit,)] = query(url, "SHOW synchronous_commit")
    usable = int(maximum) - int(reserved)
    line = next(line for line in out.splitlines() if "] postgres connections:" in line)
    assert f"max_connections allows {usable} client connections" in line
    line = next(line for line in out.splitlines() if "] postgres durability:" in line)
    assert line == f"[  OK] postgres durability: synchronous_commit {commit}" or commit == "off"


SERVER = {"max_connections": "100", "superuser_reserved_connections": "3"}


@pytest.mark.parametrize(
    ("pool", "processes", "status"),
    [(10, 1, "ok"), (10, 8, "ok"), (10, 9, "warn"), (30, 3, "warn"), (2, 30, "ok")],
)
def test_connections_warn_when_the_pools_outgrow_max_connections(
    tmp_path: Path, pool: int, processes: int, status: str
) -> None:
    """97 usable connections hold N x (pool + 1 listener) + 5 spare; more is a warning
    whose fix names a max_connections that fits."""
    settings = make_settings(tmp_path, pg_pool_size=pool)
    check = connections(SERVER, settings, processes, used=12)
    assert check.status == status
    need = processes * (pool + 1) + 5
    assert f"= {need}; 12 open now" in check.detail
    if status == "warn":
        assert check.fix is not None
        assert f"max_connections = {need + pool + 1}" in check.fix


@pytest.mark.parametrize(
    ("commit", "fsync", "status"),
    [("on", "on", "ok"), ("local", "on", "ok"), ("off", "on", "warn"), ("on", "off", "warn")],
)
def test_durability_warns_when_commits_may_be_lost(commit: str, fsync: str, status: str) -> None:
    """synchronous_commit or fsync off: a 200 may not survive a crash, a warning."""
    check = durability({"synchronous_commit": commit, "fsync": fsync})
    assert check.status == status
    if status == "warn":
        assert check.fix is not None
        assert "= on" in check.fix


def test_each_account_is_checked_and_its_url_signed_with_its_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an accounts file: each account's key is asked of MTA and its longcode checked,
    under the account's name, a fix naming its table; --url .../webhooks/mta/NAME is signed
    with NAME's secret and found under NAME's dedup key; an unconfigured name fails."""
    fake = FakeMTA(["key-of-a", "key-of-b"])
    with running_fake_mta(fake) as base_url:
        accounts = tmp_path / "accounts.toml"
        accounts.write_text(
            f'[accounts.brand-a]\nwebhook_secrets = ["{"a" * 40}"]\nmta_api_key = "key-of-a"\n'
            f'mta_base_url = "{base_url}"\nfallback_longcode_id = "1001"\n'
            f'[accounts.brand-b]\nwebhook_secrets = ["{"b" * 40}"]\nmta_api_key = "revoked"\n'
            f'mta_base_url = "{base_url}"\n'
        )
        accounts.chmod(0o600)
        monkeypatch.delenv("RECEIVER_WEBHOOK_SECRETS", raising=False)
        monkeypatch.setenv("RECEIVER_ACCOUNTS_FILE", str(accounts))
        monkeypatch.setenv("RECEIVER_DATABASE_URL", f"sqlite:///{tmp_path / 'receiver.db'}")
        with running(Settings.from_env()) as server:
            status, out = doctor(capsys, "--url", f"{server.url}/webhooks/mta/brand-a", "--json")
            _, unknown = doctor(capsys, "--url", f"{server.url}/webhooks/mta/brand-c", "--json")
            stored = server.query("SELECT account FROM events")
    checks = {c["name"]: c for c in json.loads(out)}
    assert status == 1  # brand-b's key is refused
    assert checks["MTA API key (brand-a)"]["status"] == "ok"
    assert checks["MTA API key (brand-b)"]["status"] == "fail"
    assert "mta_api_key in [accounts.brand-b]" in checks["MTA API key (brand-b)"]["fix"]
    assert checks["SMS resend longcode (brand-a)"]["status"] == "ok"
    assert checks["SMS resend longcode (brand-b)"]["status"] == "warn"
    assert checks["public URL"]["status"] == "ok", checks["public URL"]
    assert stored == [("brand-a",)]
    url_check = next(c for c in json.loads(unknown) if c["name"] == "public URL")
    assert url_check["status"] == "fail"
    assert "'brand-c', which is not configured" in url_check["detail"]
    assert "revoked" not in out
