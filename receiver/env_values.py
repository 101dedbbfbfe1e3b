"""Readers of the environment's typed values for receiver/settings.py: each either returns
the value or raises a ConfigError naming the variable."""

from __future__ import annotations

from .errors import ConfigError


def boolean(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def status_codes(raw: str) -> frozenset[int]:
    try:
        return frozenset(int(code) for code in raw.split(",") if code.strip())
    except ValueError:
        raise ConfigError(
            f"RECEIVER_FALLBACK_STATUSES must be status codes like 5,6,8,9,13, got {raw!r}"
        ) from None


def pairs(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in raw.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise ConfigError(
                f"RECEIVER_FALLBACK_IMESSAGE_TAGS must look like channel=imessage, got {raw!r}"
            )
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)
