"""Where the webhook secrets come from: ``RECEIVER_WEBHOOK_SECRETS`` or a file.

The variable is split on commas, which is ambiguous for some values: ``Summer,2024!`` is
one secret to its owner and two short ones to a split, either of which would then forge
webhooks. So every reading that a split could get wrong is refused at start-up, naming the
variable, instead of guessed: an empty item, spaces around an item, a secret shorter than
`MIN_SECRET_LENGTH`. Secrets with commas or surrounding spaces go in
``RECEIVER_WEBHOOK_SECRETS_FILE``, one per line, taken verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import ConfigError

VARIABLE = "RECEIVER_WEBHOOK_SECRETS"
FILE_VARIABLE = "RECEIVER_WEBHOOK_SECRETS_FILE"
MIN_SECRET_LENGTH = 16
"""Shorter keys are guessable offline from one captured webhook (its body and
signature); MTA's own secrets are much longer."""


def too_short(secrets: tuple[str, ...], variable: str) -> None:
    """Refuse, naming ``variable``, any secret shorter than `MIN_SECRET_LENGTH`."""
    for position, secret in enumerate(secrets, 1):
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{variable}: secret #{position} has {len(secret)} characters; at least"
                f" {MIN_SECRET_LENGTH} are required (MTA's secrets are 128 hex characters)"
            )


def from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """The webhook secrets the environment names, in order; ConfigError if ambiguous."""
    raw, path = env.get(VARIABLE), env.get(FILE_VARIABLE)
    if raw and path:
        raise ConfigError(f"set {VARIABLE} or {FILE_VARIABLE}, not both")
    if path:
        secrets = from_file(path)
        variable = FILE_VARIABLE
    else:
        secrets = split(raw or "")
        variable = VARIABLE
    if not secrets:
        raise ConfigError(
            f"{VARIABLE} is empty: set it to the secret(s) of your MTA webhook registrations"
            f" (comma-separated during a rotation), or name a file in {FILE_VARIABLE}"
        )
    too_short(secrets, variable)
    return secrets


def split(raw: str) -> tuple[str, ...]:
    """The comma-separated secrets of ``raw``; ConfigError for any ambiguous item."""
    if not raw.strip():
        return ()
    items = tuple(raw.split(","))
    for position, item in enumerate(items, 1):
        if not item or item != item.strip():
            what = "is empty" if not item.strip() else "has spaces around it"
            raise ConfigError(
                f"{VARIABLE}: item #{position} {what}, so the comma-separated value is"
                f" ambiguous; write the secrets as a,b without spaces, or put secrets"
                f" containing commas or spaces one per line in {FILE_VARIABLE}"
            )
    return items


def from_file(path: str) -> tuple[str, ...]:
    """One secret per line, verbatim (spaces and commas included). A line end closes
    each line, so a trailing newline adds nothing; empty lines are skipped; a CR line
    end is refused (it would silently become part of the secret)."""
    try:
        with open(path, encoding="utf-8", newline="") as file:  # no \r\n translation
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{FILE_VARIABLE}: cannot read {path!r}: {exc}") from None
    lines = tuple(line for line in text.split("\n") if line)
    if any(line.endswith("\r") for line in lines):
        raise ConfigError(f"{FILE_VARIABLE}: {path!r} has CRLF line ends; save it with LF only")
    return lines
