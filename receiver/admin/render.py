"""Templates: Jinja2 with autoescaping on for everything, shipped inside the package."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ..logs import redact_phone
from ..mta.events import DEFAULT_ACCOUNT
from ..settings import Settings
from . import csrf


def templates(settings: Settings) -> Jinja2Templates:
    """The dashboard's templates, with its formatting filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("receiver.admin", "templates"),
        # Everything is HTML; payload fields (error texts, tags) come from the internet.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["ts"] = timestamp
    env.filters["age"] = age
    env.filters["phone"] = lambda number: redact_phone(number, settings.redact)
    # A message id from the internet as one path segment: `urlencode` keeps "/", so an id
    # like "evil/../4242" made a button act on message 4242.
    env.filters["segment"] = lambda value: quote(str(value), safe="")
    env.filters["dotted"] = dotted
    # Several MTA accounts (docs/accounts.md): the names the filters offer, whether the
    # account is shown at all, and the query that keeps a message's account in its URLs
    # (message ids are per account, so two accounts may share one).
    env.globals["accounts"] = tuple(dict.fromkeys([*settings.accounts, DEFAULT_ACCOUNT]))
    env.globals["several_accounts"] = bool(settings.file_accounts)
    env.globals["of"] = account_query
    return Jinja2Templates(env=env)


def account_query(account: str) -> str:
    """``?account=NAME`` for a message of ``account``; empty for the default account's,
    so its URLs stay what they were before accounts."""
    return "" if account == DEFAULT_ACCOUNT else f"?account={quote(account, safe='')}"


def page(
    views: Jinja2Templates,
    request: Request,
    name: str,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """Render ``name`` with what every page needs: the CSRF token, the mount's base path,
    and the flash message left by the last action (shown once)."""
    session = request.session
    return views.TemplateResponse(
        request,
        name,
        {
            "base": request.scope.get("root_path", ""),
            "csrf_field": csrf.FIELD,
            "csrf_token": csrf.token(session),
            "flash": session.pop("flash", None),
            "logged_in": "operator" in session,
            **context,
        },
        status_code=status_code,
    )


def dotted(name: object) -> Markup:
    """A dotted handler name, escaped, that may wrap after its dots and nowhere else
    (``myapp.sms.on_reply`` breaks as ``myapp.sms.`` / ``on_reply``, never mid-word)."""
    return Markup(".<wbr>").join(escape(part) for part in str(name).split("."))


def timestamp(epoch: float | None) -> str:
    """``2024-05-01 12:30:05Z``; empty for None."""
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(seconds: float | None) -> str:
    """A short duration: ``42s``, ``3m 5s``, ``2h 3m``, ``1d 2h``."""
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            return f"{s // size}{unit} {s % size // sub_size}{sub}"
    return f"{s // 60}m {s % 60}s" if s >= 60 else f"{s}s"
