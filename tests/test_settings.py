"""Settings from the environment, secrets kept out of reprs, and start-up failures of the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from receiver.errors import ConfigError
from receiver.settings import DEFAULT_DATABASE_URL, Secret, Settings

from .conftest import SECRET, free_port, process_env

OTHER = "f" * 128


def from_env(**variables: str) -> Settings:
    """Settings from exactly these ``RECEIVER_*`` variables (names given without the prefix)."""
    return Settings.from_env({f"RECEIVER_{name}": value for name, value in variables.items()})


def refusal(**variables: str) -> str:
    """The ConfigError message ``from_env`` raises for these variables."""
    with pytest.raises(ConfigError) as refused:
        from_env(**variables)
    return str(refused.value)


# --- secrets ---------------------------------------------------------------------------


def test_missing_secrets_fail_closed_with_a_clear_message() -> None:
    """No RECEIVER_WEBHOOK_SECRETS at all is a ConfigError naming the variable."""
    assert "RECEIVER_WEBHOOK_SECRETS" in refusal()


@pytest.mark.parametrize("value", ["", "   ", " , ,\t,", "\n"])
def test_empty_or_blank_secrets_fail_closed(value: str) -> None:
    """Empty, whitespace-only or comma-only secrets are refused like missing ones."""
    assert "RECEIVER_WEBHOOK_SECRETS" in refusal(WEBHOOK_SECRETS=value)


def test_comma_separated_secrets_are_kept_in_order() -> None:
    """'a,b' gives two secrets a, b in that order (rotation order kept)."""
    settings = from_env(WEBHOOK_SECRETS=f"{SECRET},{OTHER}")
    assert [s.reveal() for s in settings.webhook_secrets] == [SECRET, OTHER]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("x,y", "secret #1 has 1 characters"),
        ("Summer,2024!", "secret #1 has 6 characters"),
        (f"{SECRET},short-secret", "secret #2 has 12 characters"),
        (f" {SECRET}", "item #1 has spaces around it"),
        (f"{SECRET} , {OTHER}", "item #1 has spaces around it"),
        (f"{SECRET},,{OTHER}", "item #2 is empty"),
        (f"{SECRET},", "item #2 is empty"),
        ("change-me-to-the-128-hex-characters-you-gave-mta", "secret #1 is a placeholder"),
        (f"{SECRET},Demo-Secret-0123456789", "secret #2 is a placeholder"),
    ],
)
def test_short_or_ambiguous_secrets_are_refused(value: str, says: str) -> None:
    """Secrets under 16 characters, placeholders copied from the docs (anyone can sign
    with them) and comma lists a split could misread (empty items, spaces around items)
    stop the start-up, naming the variable."""
    message = refusal(WEBHOOK_SECRETS=value)
    assert "RECEIVER_WEBHOOK_SECRETS" in message
    assert says in message
    assert SECRET not in message


def test_secrets_file_is_read_verbatim_one_per_line(tmp_path: Path) -> None:
    """RECEIVER_WEBHOOK_SECRETS_FILE: each line is a secret as written (commas and spaces
    kept), empty lines and a trailing newline add nothing."""
    path = tmp_path / "secrets"
    path.write_text(f"Summer,2024! and a space \n\n{SECRET}\n")
    settings = from_env(WEBHOOK_SECRETS_FILE=str(path))
    assert [s.reveal() for s in settings.webhook_secrets] == ["Summer,2024! and a space ", SECRET]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("short\n", "RECEIVER_WEBHOOK_SECRETS_FILE: secret #1 has 5 characters"),
        (f"{SECRET}\r\n", "CRLF"),
        ("\n\n", "RECEIVER_WEBHOOK_SECRETS is empty"),
    ],
)
def test_bad_secrets_file_is_refused(tmp_path: Path, content: str, says: str) -> None:
    """A secrets file with a short secret, CRLF line ends or no secret is refused."""
    path = tmp_path / "secrets"
    path.write_text(content, newline="")
    assert says in refusal(WEBHOOK_SECRETS_FILE=str(path))


def test_secrets_variable_and_file_together_are_refused(tmp_path: Path) -> None:
    """Both RECEIVER_WEBHOOK_SECRETS and its _FILE form set: refused, not merged."""
    path = tmp_path / "secrets"
    path.write_text(f"{OTHER}\n")
    message = refusal(WEBHOOK_SECRETS=SECRET, WEBHOOK_SECRETS_FILE=str(path))
    assert "not both" in message
    assert "RECEIVER_WEBHOOK_SECRETS_FILE" in refusal(WEBHOOK_SECRETS_FILE=str(tmp_path / "none"))


def test_direct_construction_refuses_a_short_secret() -> None:
    """Settings built in code also refuse a secret under 16 characters."""
    with pytest.raises(ConfigError, match="RECEIVER_WEBHOOK_SECRETS"):
        Settings(webhook_secrets=(Secret(SECRET), Secret("x" * 15)))


def test_direct_construction_refuses_an_empty_secret() -> None:
    """Settings built in code (not from the env) also refuse an empty secret."""
    with pytest.raises(ConfigError, match="RECEIVER_WEBHOOK_SECRETS"):
        Settings(webhook_secrets=(Secret(SECRET), Secret("")))


# --- defaults and typed values ---------------------------------------------------------


def test_defaults() -> None:
    """With only a secret set, the database is sqlite:///receiver.db and bodies max 256 KiB."""
    settings = from_env(WEBHOOK_SECRETS=SECRET)
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///receiver.db"
    assert settings.max_body_bytes == 262_144
    assert settings.handlers == ()


def test_typed_values_are_read() -> None:
    """Integers, numbers and handler lists are parsed from their strings."""
    settings = from_env(
        WEBHOOK_SECRETS=SECRET,
        MAX_BODY_BYTES=" 1024 ",
        READ_TIMEOUT="2.5",
        HANDLER_TIMEOUT="0.5",
        HANDLERS="a.b, c.d:reg ,",
        DATABASE_URL="sqlite:////tmp/x.db",
    )
    assert settings.max_body_bytes == 1024
    assert settings.read_timeout == 2.5
    assert settings.handler_timeout == 0.5
    assert settings.handlers == ("a.b", "c.d:reg")
    assert settings.database_url == "sqlite:////tmp/x.db"


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("MAX_BODY_BYTES", "12kb", "integer"),
        ("MAX_BODY_BYTES", "1.5", "integer"),
        ("WORKER_CONCURRENCY", "lots", "integer"),
        ("READ_TIMEOUT", "soon", "number"),
    ],
)
def test_bad_numbers_name_the_variable(name: str, value: str, kind: str) -> None:
    """An unparseable number is a ConfigError naming the variable, the expected kind and value."""
    message = refusal(WEBHOOK_SECRETS=SECRET, **{name: value})
    assert f"RECEIVER_{name}" in message
    assert kind in message
    assert repr(value) in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_BODY_BYTES", "0"),
        ("MAX_BODY_BYTES", "-1"),
        ("READ_TIMEOUT", "-0.5"),
        ("HANDLER_TIMEOUT", "0"),
    ],
)
def test_non_positive_values_are_refused(name: str, value: str) -> None:
    """Zero or negative limits are a ConfigError naming the variable."""
    message = refusal(WEBHOOK_SECRETS=SECRET, **{name: value})
    assert f"RECEIVER_{name}" in message
    assert "greater than 0" in message


def test_nan_is_not_a_positive_number() -> None:
    """RECEIVER_READ_TIMEOUT=nan is refused like any other non-positive value."""
    assert "RECEIVER_READ_TIMEOUT" in refusal(WEBHOOK_SECRETS=SECRET, READ_TIMEOUT="nan")


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "sqlite", "/var/receiver.db", "http://x"])
def test_unsupported_database_scheme_is_refused(url: str) -> None:
    """A database URL that is neither sqlite: nor postgresql: is a ConfigError naming it."""
    assert "RECEIVER_DATABASE_URL" in refusal(WEBHOOK_SECRETS=SECRET, DATABASE_URL=url)


def test_bad_boolean_is_refused() -> None:
    """RECEIVER_REDACT accepts only true/false spellings."""
    assert "RECEIVER_REDACT" in refusal(WEBHOOK_SECRETS=SECRET, REDACT="maybe")


# --- secrets stay secret ---------------------------------------------------------------


def test_repr_and_str_never_show_webhook_secrets() -> None:
    """repr(settings), str/repr(Secret) and the settings' raw env copy never print a secret."""
    settings = from_env(WEBHOOK_SECRETS=f"{SECRET},{OTHER}")
    secret = settings.webhook_secrets[0]
    for text in (repr(settings), str(settings), str(secret), repr(secret), f"{secret}"):
        assert SECRET not in text
        assert OTHER not in text
    assert secret.reveal() == SECRET
    assert settings.extra["RECEIVER_WEBHOOK_SECRETS"]  # kept, but repr=False above


def test_repr_never_shows_the_database_password() -> None:
    """A password inside RECEIVER_DATABASE_URL does not appear in repr(settings)."""
    settings = from_env(
        WEBHOOK_SECRETS=SECRET, DATABASE_URL="postgresql://receiver:hunter2-pw@db:5432/mta"
    )
    assert "hunter2-pw" not in repr(settings)


# --- the CLI refuses to start ---------------------------------------------------------------


def serve(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m receiver serve`` to completion (it must exit by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "receiver", "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("value", [None, "x,y"])
def test_cli_without_secrets_exits_nonzero_naming_the_variable(
    tmp_path: Path, value: str | None
) -> None:
    """`serve` with no RECEIVER_WEBHOOK_SECRETS, or short ones, exits non-zero and says
    which variable."""
    env = process_env(tmp_path)
    del env["RECEIVER_WEBHOOK_SECRETS"]
    if value is not None:
        env["RECEIVER_WEBHOOK_SECRETS"] = value
    done = serve(tmp_path, env)
    assert done.returncode != 0
    assert "RECEIVER_WEBHOOK_SECRETS" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_cli_with_unimportable_handlers_names_the_module(tmp_path: Path) -> None:
    """`serve` with RECEIVER_HANDLERS=no_such_module_xyz exits non-zero naming that module."""
    done = serve(tmp_path, process_env(tmp_path, RECEIVER_HANDLERS="no_such_module_xyz"))
    assert done.returncode != 0
    assert "no_such_module_xyz" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_cli_with_a_module_lacking_registry_explains(tmp_path: Path) -> None:
    """`serve` with RECEIVER_HANDLERS=json (no `registry`) exits non-zero saying what is needed."""
    done = serve(tmp_path, process_env(tmp_path, RECEIVER_HANDLERS="json"))
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "RECEIVER_HANDLERS" in output
    assert "json" in output
    assert "Registry" in output
    assert "Traceback" not in done.stderr


def test_backfill_and_max_age_settings() -> None:
    """The backfill's settings: the rolling run off, a 10-minute gap and a 4-hour max age
    by default; read in seconds; negative values refused, naming the variable."""
    default = from_env(WEBHOOK_SECRETS=SECRET)
    assert (default.backfill_interval, default.backfill_gap_seconds) == (0.0, 600.0)
    assert default.fallback_max_age == 14_400.0
    chosen = from_env(
        WEBHOOK_SECRETS=SECRET,
        BACKFILL_INTERVAL="300",
        BACKFILL_GAP_SECONDS="0",
        FALLBACK_MAX_AGE="7200",
    )
    assert (chosen.backfill_interval, chosen.backfill_gap_seconds) == (300.0, 0.0)
    assert chosen.fallback_max_age == 7200.0
    for name in ("BACKFILL_INTERVAL", "BACKFILL_GAP_SECONDS", "FALLBACK_MAX_AGE"):
        assert f"RECEIVER_{name}" in refusal(WEBHOOK_SECRETS=SECRET, **{name: "-1"})
