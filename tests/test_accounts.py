"""The accounts file: parsing, inheritance from the environment, and every refusal."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from receiver.accounts import Account, load
from receiver.errors import ConfigError
from receiver.mta import DEFAULT_BASE_URL
from receiver.secret import Secret
from receiver.settings import Settings

from .conftest import (
    SECRET,
    Process,
    delivery,
    encode,
    process_env,
    signed_headers,
    start_process,
)
from .test_settings import serve

SECRET_A = "1" * 64
SECRET_B = "2" * 64
TWO_ACCOUNTS = f"""
[accounts.brand-a]
webhook_secrets = ["{SECRET_A}"]
mta_api_key = "key-a"
fallback_statuses = [5, 6]
fallback_longcode_id = 4321

[accounts.brand-b]
webhook_secrets = ["{SECRET_B}", "{"3" * 64}"]
fallback = false
fallback_grace_seconds = 30
mta_base_url = "http://127.0.0.1:9999/v3"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    """An accounts file holding ``text``, with ``mode``."""
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def environment(**fields: object) -> Account:
    """The environment's account as `load` receives it (no secrets unless given)."""
    return Account("default", **{"webhook_secrets": (), **fields})  # type: ignore[arg-type]


def refusal(tmp_path: Path, text: str, defaults: Account | None = None) -> str:
    """The ConfigError message loading ``text`` raises."""
    with pytest.raises(ConfigError) as refused:
        load(write(tmp_path, text), defaults or environment())
    return str(refused.value)


def table(**keys: str) -> str:
    """One account ``a`` with a valid secret and the given ``key = value`` lines."""
    lines = "".join(f"{key} = {value}\n" for key, value in keys.items())
    return f'[accounts.a]\nwebhook_secrets = ["{SECRET_A}"]\n{lines}'


# --- parsing ---------------------------------------------------------------------------


def test_two_accounts_are_read_in_file_order_with_their_overrides(tmp_path: Path) -> None:
    """Each table's keys become its account's fields; a TOML integer longcode id is kept."""
    a, b = load(write(tmp_path, TWO_ACCOUNTS), environment())
    assert (a.name, b.name) == ("brand-a", "brand-b")
    assert a.webhook_secrets == (Secret(SECRET_A),)
    assert a.mta_api_key == Secret("key-a")
    assert a.fallback_statuses == frozenset({5, 6})
    assert a.fallback_longcode_id == "4321"
    assert [s.reveal() for s in b.webhook_secrets] == [SECRET_B, "3" * 64]
    assert b.mta_api_key is None
    assert (b.fallback_enabled, b.fallback_grace_seconds) == (False, 30.0)
    assert b.mta_base_url == "http://127.0.0.1:9999/v3"


def test_omitted_keys_take_the_environments_values_but_never_its_key(tmp_path: Path) -> None:
    """A table without a key inherits the environment's value; the API key is never inherited."""
    defaults = environment(
        mta_api_key=Secret("env-key"),
        fallback_enabled=False,
        fallback_statuses=frozenset({6}),
        fallback_grace_seconds=12.0,
        fallback_longcode_id="777",
        mta_base_url="http://fake/v3",
    )
    (account,) = load(write(tmp_path, table()), defaults)
    assert account.mta_api_key is None
    assert account.fallback_enabled is False
    assert account.fallback_statuses == frozenset({6})
    assert (account.fallback_grace_seconds, account.fallback_longcode_id) == (12.0, "777")
    assert account.mta_base_url == "http://fake/v3"


def test_account_reprs_hide_secrets_and_keys(tmp_path: Path) -> None:
    """Neither a webhook secret nor an API key appears in an account's repr."""
    text = repr(load(write(tmp_path, TWO_ACCOUNTS), environment()))
    assert SECRET_A not in text
    assert "key-a" not in text


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("", "no accounts", id="empty-file"),
        pytest.param("[accounts]\n", "no accounts", id="no-tables"),
        pytest.param("accounts = 3\n", "no accounts", id="accounts-not-a-table"),
        pytest.param(
            '[account.a]\nwebhook_secrets = ["x"]\n', "unknown key(s) account;", id="typo"
        ),
        pytest.param("[accounts.a]\nfallback = yes\n", "(at line 2, column", id="bad-toml"),
        pytest.param("[accounts]\na = 1\n", "write it as a table", id="not-a-table"),
    ],
)
def test_files_without_accounts_or_not_toml_are_refused(
    tmp_path: Path, text: str, says: str
) -> None:
    """An empty or mistyped file, or one that is not TOML (with its line), is refused."""
    message = refusal(tmp_path, text)
    assert says in message
    assert "RECEIVER_ACCOUNTS_FILE" in message
    assert str(tmp_path / "accounts.toml") in message


@pytest.mark.parametrize(
    "name", ["Brand-A", "brand_a", "-brand", "a" * 41, '"brand a"', '".."', '"é"', '""']
)
def test_bad_account_names_are_refused(tmp_path: Path, name: str) -> None:
    """Upper case, '_', a leading '-', 41 characters, spaces, dots, non-ASCII, empty."""
    message = refusal(tmp_path, f'[accounts.{name}]\nwebhook_secrets = ["{SECRET_A}"]\n')
    assert "lowercase letters, digits and '-'" in message


def test_longest_name_and_digits_are_accepted(tmp_path: Path) -> None:
    """40 characters of letters, digits and '-' is a name."""
    name = "0-" + "a" * 38
    (account,) = load(
        write(tmp_path, f'[accounts.{name}]\nwebhook_secrets = ["{SECRET_A}"]\n'), environment()
    )
    assert account.name == name


def test_default_is_reserved_for_the_environment(tmp_path: Path) -> None:
    """An account named 'default' in the file is refused, naming the environment's account."""
    message = refusal(tmp_path, f'[accounts.default]\nwebhook_secrets = ["{SECRET_A}"]\n')
    assert "account 'default'" in message
    assert "environment" in message


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        pytest.param(
            {"fallback_status": "[5]"}, "unknown key(s) fallback_status; known:", id="typo"
        ),
        pytest.param({"fallback": '"yes"'}, "fallback must be true or false", id="fallback-str"),
        pytest.param({"fallback_statuses": "[5, true]"}, "status codes", id="bool-status"),
        pytest.param({"fallback_statuses": '"5,6"'}, "status codes", id="status-string"),
        pytest.param({"fallback_statuses": "[6, 11]"}, "may not contain [11]", id="stopped"),
        pytest.param({"fallback_grace_seconds": "-1"}, ">= 0", id="negative-grace"),
        pytest.param({"fallback_grace_seconds": "inf"}, ">= 0", id="infinite-grace"),
        pytest.param({"fallback_grace_seconds": "true"}, ">= 0", id="bool-grace"),
        pytest.param({"mta_api_key": '""'}, "mta_api_key must be", id="empty-key"),
        pytest.param({"mta_api_key": "1234"}, "mta_api_key must be", id="int-key"),
        pytest.param({"mta_base_url": '"ftp://x"'}, "mta_base_url must be", id="url"),
        pytest.param({"fallback_longcode_id": "true"}, "longcode id", id="bool-longcode"),
    ],
)
def test_wrong_keys_and_types_are_refused_naming_the_account(
    tmp_path: Path, keys: dict[str, str], says: str
) -> None:
    """Unknown keys (listing the known ones) and wrongly typed values name file and account."""
    message = refusal(tmp_path, table(**keys))
    assert says in message
    assert "account 'a'" in message
    assert str(tmp_path / "accounts.toml") in message


@pytest.mark.parametrize(
    ("secrets", "says"),
    [
        pytest.param(None, "webhook_secrets must be a non-empty list", id="missing"),
        pytest.param("[]", "webhook_secrets must be a non-empty list", id="empty"),
        pytest.param(f'"{SECRET_A}"', "webhook_secrets must be a non-empty list", id="string"),
        pytest.param("[1234567890123456789]", "non-empty list of strings", id="int"),
        pytest.param('["short"]', "secret #1 has 5 characters", id="short"),
        pytest.param(f'["{SECRET_A}", ""]', "secret #2 has 0 characters", id="empty-item"),
        pytest.param('["change-me-to-your-secret-123"]', "placeholder", id="placeholder"),
    ],
)
def test_missing_empty_short_or_placeholder_secrets_are_refused(
    tmp_path: Path, secrets: str | None, says: str
) -> None:
    """Every account needs real webhook secrets, checked like the environment's."""
    line = "" if secrets is None else f"webhook_secrets = {secrets}\n"
    message = refusal(tmp_path, f"[accounts.a]\nmta_api_key = 'k'\n{line}")
    assert says in message
    assert "account 'a'" in message


def test_one_secret_in_two_accounts_is_refused(tmp_path: Path) -> None:
    """Two accounts sharing a secret could not tell whose a webhook is."""
    text = (
        f'[accounts.a]\nwebhook_secrets = ["{SECRET_A}"]\n'
        f'[accounts.b]\nwebhook_secrets = ["{SECRET_B}", "{SECRET_A}"]\n'
    )
    message = refusal(tmp_path, text)
    assert "account 'b' has a webhook secret of account 'a'" in message


def test_the_default_accounts_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    """A file account may not reuse a secret of the environment's account either."""
    message = refusal(tmp_path, table(), environment(webhook_secrets=(Secret(SECRET_A),)))
    assert "account 'a' has a webhook secret of account 'default'" in message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620])
def test_a_file_others_may_open_is_refused(tmp_path: Path, mode: int) -> None:
    """Group- or world-accessible: refused, saying the mode and the chmod that fixes it."""
    path = write(tmp_path, TWO_ACCOUNTS, mode)
    with pytest.raises(ConfigError) as refused:
        load(path, environment())
    assert f"mode {mode:04o}" in str(refused.value)
    assert f"chmod 600 {path}" in str(refused.value)


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    """0400 and 0600 are fine."""
    for mode in (0o400, 0o600):
        path = write(tmp_path, TWO_ACCOUNTS, mode)
        assert len(load(path, environment())) == 2
        os.chmod(path, 0o600)


def test_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError naming the variable and the path."""
    with pytest.raises(ConfigError, match=r"RECEIVER_ACCOUNTS_FILE: cannot read .*nowhere"):
        load(str(tmp_path / "nowhere.toml"), environment())


# --- in the settings -------------------------------------------------------------------


def settings_from(tmp_path: Path, text: str = TWO_ACCOUNTS, **variables: str) -> Settings:
    """Settings from a file of ``text`` and exactly these variables (without the prefix)."""
    env = {f"RECEIVER_{name}": value for name, value in variables.items()}
    return Settings.from_env({"RECEIVER_ACCOUNTS_FILE": write(tmp_path, text), **env})


def test_a_file_alone_needs_no_webhook_secrets_in_the_environment(tmp_path: Path) -> None:
    """Only a file: its accounts, no default account."""
    settings = settings_from(tmp_path)
    assert list(settings.accounts) == ["brand-a", "brand-b"]
    assert settings.webhook_secrets == ()


def test_environment_secrets_add_the_default_account_first(tmp_path: Path) -> None:
    """Secrets in the environment too: 'default' first, built from the environment."""
    settings = settings_from(
        tmp_path, WEBHOOK_SECRETS=SECRET, MTA_API_KEY="env-key", FALLBACK_STATUSES="6"
    )
    assert list(settings.accounts) == ["default", "brand-a", "brand-b"]
    default = settings.account("default")
    assert default.webhook_secrets == (Secret(SECRET),)
    assert default.mta_api_key == Secret("env-key")
    assert settings.account("brand-b").fallback_statuses == frozenset({6})  # inherited
    assert settings.account("brand-a").fallback_statuses == frozenset({5, 6})  # its own


def test_environment_only_configuration_is_the_default_account(tmp_path: Path) -> None:
    """No file: one account, 'default', exactly the environment's values."""
    settings = Settings.from_env({"RECEIVER_WEBHOOK_SECRETS": SECRET, "RECEIVER_FALLBACK": "no"})
    assert list(settings.accounts) == ["default"]
    assert settings.account("default") == Account(
        "default", (Secret(SECRET),), fallback_enabled=False, mta_base_url=DEFAULT_BASE_URL
    )
    assert settings.file_accounts == ()


def test_neither_secrets_nor_a_file_is_the_existing_error() -> None:
    """Nothing configured still fails closed, naming both ways to configure an account."""
    with pytest.raises(ConfigError, match="RECEIVER_WEBHOOK_SECRETS is empty") as refused:
        Settings()
    assert "RECEIVER_ACCOUNTS_FILE" in str(refused.value)


def test_an_unknown_account_is_a_config_error_naming_those_served(tmp_path: Path) -> None:
    """Settings.account of a name not served raises ConfigError, never KeyError."""
    with pytest.raises(ConfigError, match=r"no account 'brand-c'; .*brand-a, brand-b"):
        settings_from(tmp_path).account("brand-c")


def test_settings_built_directly_still_refuse_shared_secrets() -> None:
    """The invariant holds for Settings built without from_env (tests, tools)."""
    shared = Account("a", (Secret(SECRET),))
    with pytest.raises(ConfigError, match="account 'a' has a webhook secret of account"):
        Settings(webhook_secrets=(Secret(SECRET),), file_accounts=(shared,))
    with pytest.raises(ConfigError, match="'default' is reserved"):
        Settings(file_accounts=(Account("default", (Secret(SECRET),)),))


@pytest.mark.parametrize(("raw", "scope"), [("account", "account"), ("GLOBAL", "global")])
def test_opt_out_scope_is_read(raw: str, scope: str) -> None:
    """RECEIVER_OPT_OUT_SCOPE is account (the default) or global, any case."""
    env = {"RECEIVER_WEBHOOK_SECRETS": SECRET}
    assert Settings.from_env(env).opt_out_scope == "account"
    assert Settings.from_env({**env, "RECEIVER_OPT_OUT_SCOPE": raw}).opt_out_scope == scope


def test_a_bad_opt_out_scope_is_refused() -> None:
    """Anything but account or global stops start-up, naming the variable."""
    with pytest.raises(ConfigError, match="RECEIVER_OPT_OUT_SCOPE must be account or global"):
        Settings.from_env({"RECEIVER_WEBHOOK_SECRETS": SECRET, "RECEIVER_OPT_OUT_SCOPE": "all"})


def test_the_example_file_is_refused_until_its_secrets_are_replaced(tmp_path: Path) -> None:
    """deploy/accounts.example.toml parses, and its placeholder secrets stop start-up."""
    example = (Path(__file__).parent.parent / "deploy" / "accounts.example.toml").read_text()
    assert "placeholder" in refusal(tmp_path, example)
    real = example.replace("change-me-brand-a", "a" * 64).replace("change-me-brand-b", "b" * 64)
    assert [account.name for account in load(write(tmp_path, real), environment())]


# --- the service itself ----------------------------------------------------------------


@pytest.mark.slow
def test_serve_refuses_a_readable_file_with_the_fix(tmp_path: Path) -> None:
    """`mta-receiver serve` with a 0644 accounts file exits 2, one line, saying chmod 600."""
    env = process_env(tmp_path, RECEIVER_ACCOUNTS_FILE=write(tmp_path, TWO_ACCOUNTS, 0o644))
    del env["RECEIVER_WEBHOOK_SECRETS"]
    done = serve(tmp_path, env)
    assert done.returncode == 2
    assert "chmod 600" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_serve_with_only_a_file_serves_its_accounts(
    tmp_path: Path, processes: list[Process]
) -> None:
    """A receiver process configured by a file alone accepts each account's webhooks."""
    env = process_env(tmp_path, RECEIVER_ACCOUNTS_FILE=write(tmp_path, TWO_ACCOUNTS))
    del env["RECEIVER_WEBHOOK_SECRETS"]
    processes.append(process := start_process(tmp_path, env))
    body = encode(delivery())
    answers = {
        path: httpx.post(
            f"{process.url}{path}", content=body, headers=signed_headers(body, secret)
        ).status_code
        for path, secret in [
            ("/webhooks/mta/brand-a", SECRET_A),
            ("/webhooks/mta/brand-b", SECRET_B),
            ("/webhooks/mta", SECRET_A),
        ]
    }
    assert answers == {
        "/webhooks/mta/brand-a": 200,
        "/webhooks/mta/brand-b": 200,
        "/webhooks/mta": 404,
    }
