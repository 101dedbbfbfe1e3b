"""Phone numbers in one spelling, E.164, before any key or comparison.

MTA's payload tables give phone fields as ``phone_national`` (``5555555555``) or
``phone_e164`` (docs/mta.md, "Webhooks MTA sends to us"), and integrations spell the
same subscriber both ways; an opt-out keyed on one spelling must match the other. A
national number takes the default country (``RECEIVER_DEFAULT_COUNTRY_CODE``, 1 unless
set); an iMessage Apple ID (an e-mail address) is lowercased instead.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_COUNTRY_CODE", "e164", "legacy_key", "opt_out_keys"]

DEFAULT_COUNTRY_CODE = "1"
_NOT_DIGIT = re.compile(r"\D")


def e164(number: str, country: str = DEFAULT_COUNTRY_CODE) -> str:
    """``number`` as ``+<country><national>``; an e-mail lowercased; text with no digits
    kept as it came (stripped)."""
    text = number.strip()
    if "@" in text:
        return text.lower()
    digits = _NOT_DIGIT.sub("", text)
    if not digits:
        return text
    if text.startswith("+"):
        return "+" + digits
    if text.startswith("00"):  # the international prefix most of the world dials
        return "+" + digits[2:]
    if country == "1":
        # NANP: ten digits national, eleven with the country code in front.
        return "+" + digits if len(digits) == 11 and digits.startswith("1") else "+1" + digits
    if digits.startswith("0"):  # a trunk prefix: 07911 123456 → +44 7911 123456
        return "+" + country + digits[1:]
    if digits.startswith(country) and len(digits) > 10:
        return "+" + digits
    return "+" + country + digits


def legacy_key(number: str) -> str:
    """The opt-out key older versions stored: digits, a NANP ``1`` dropped (``+1 555
    123 4567`` → ``5551234567``), an e-mail lowercased. Read, never written."""
    if "@" in number:
        return number.strip().lower()
    digits = _NOT_DIGIT.sub("", number)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def opt_out_keys(number: str) -> tuple[str, str]:
    """The opt-out key written today (E.164) and the one older versions wrote (national
    digits), both read: normalising on read keeps their opt-outs without a migration."""
    return e164(number), legacy_key(number)
