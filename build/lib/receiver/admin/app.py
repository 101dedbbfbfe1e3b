"""The ``/admin`` sub-application: routes, session middleware, refusals in one table.

The session cookie is signed (itsdangerous), HttpOnly and SameSite=Lax. It is Secure
unless ``RECEIVER_ADMIN_INSECURE_COOKIES`` says otherwise: a fixed choice rather than one
made per request from the scheme, because behind a TLS-terminating proxy the scheme we
see is ``http`` unless proxy headers are trusted, and a per-request guess would then
quietly send the session in clear. Failing closed means a plain-HTTP setup must opt out.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from ..store import Store
from . import auth, render
from .forms import FormTooLarge
from .render import page
from .routes import CsrfRejected, Dashboard, LoginRequired, Throttled

log = logging.getLogger("receiver.admin")

SESSION_COOKIE = "mta_admin"
Handler = Callable[[Request, Exception], Response]


def create_admin(
    settings: Settings,
    store: Store,
    *,
    notify: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The dashboard app for ``Mount("/admin", ...)``. ``notify`` wakes the worker after a
    retry; ``clock`` drives the login throttle and action timestamps (tests)."""
    if settings.admin_password is None:
        raise ValueError("the dashboard needs RECEIVER_ADMIN_PASSWORD")
    if settings.session_secret is not None:
        session_secret = settings.session_secret.reveal()
    else:
        session_secret = secrets.token_urlsafe(32)
        log.warning(
            "RECEIVER_SESSION_SECRET is not set: using a random one for this process;"
            " dashboard sessions will not survive a restart nor be shared across replicas"
        )
    views = render.templates(settings)
    dash = Dashboard(
        store,
        views,
        auth.Password(settings.admin_password, session_secret),
        auth.LoginThrottle(clock),
        clock,
        notify,
        redact=settings.redact,
    )
    return Starlette(
        routes=[
            Route("/", dash.overview, name="admin"),
            Route("/login", dash.login_form, methods=["GET"]),
            Route("/login", dash.login, methods=["POST"]),
            Route("/logout", dash.logout, methods=["POST"]),
            Route("/events", dash.events),
            Route("/events/{event_id:int}", dash.event),
            # :path, as message ids may hold "/" (templates encode it, the server decodes).
            Route("/messages/{message_id:path}", dash.timeline),
            Route("/events/{event_id:int}/retry", dash.retry, methods=["POST"]),
            Route("/resends/{message_id:path}/resend", dash.resend, methods=["POST"]),
            Route("/resends/{message_id:path}/drop", dash.confirm_drop, methods=["GET"]),
            Route("/resends/{message_id:path}/drop", dash.drop, methods=["POST"]),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=session_secret,
                session_cookie=SESSION_COOKIE,
                max_age=auth.SESSION_MAX_AGE,
                same_site="lax",
                https_only=settings.admin_secure_cookies,
            ),
        ],
        exception_handlers={
            LoginRequired: login_required(views),
            CsrfRejected: notice(
                views,
                403,
                "Your session has changed",
                "Forbidden: the form's security token is missing or stale (the page was"
                " open across a log-out, a restart or a password change). Nothing was done.",
            ),
            Throttled: throttled(views),
            FormTooLarge: notice(views, 413, "Too large", "Request too large."),
        },
    )


# --- refusals: the status of each, and why ------------------------------------------------


def login_required(views: Jinja2Templates) -> Handler:
    """GET: 303 to the login page, coming back here after. Anything else: 403 (an action
    is never replayed after a login), as a page with the way back."""

    def handler(request: Request, exc: Exception) -> Response:
        if request.method in ("GET", "HEAD"):
            base = request.scope.get("root_path", "")
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{base}/login?next={quote(target, safe='/')}", 303)
        text = "Forbidden: log in first. Your session ended, so nothing was done."
        return page(views, request, "notice.html", 403, title="Logged out", text=text)

    return handler


def throttled(views: Jinja2Templates) -> Handler:
    """429 with Retry-After: too many failed logins from this address."""

    def handler(request: Request, exc: Exception) -> Response:
        wait = exc.retry_after if isinstance(exc, Throttled) else 60.0
        seconds = int(wait + 0.999)
        response = page(
            views,
            request,
            "notice.html",
            429,
            title="Too many failed logins",
            text=f"Too many failed logins; try again later (in {seconds} s).",
        )
        response.headers["Retry-After"] = str(seconds)
        return response

    return handler


def notice(views: Jinja2Templates, status: int, title: str, text: str) -> Handler:
    """A refusal with a fixed status, as a page with the way back."""

    def handler(request: Request, exc: Exception) -> Response:
        return page(views, request, "notice.html", status, title=title, text=text)

    return handler


class SecurityHeaders:
    """Headers for every dashboard response: never cached, never framed (clickjacking on
    the action buttons), no scripts at all, forms post only to us."""

    HEADERS = (
        (b"cache-control", b"no-store"),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (
            b"content-security-policy",
            b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
            b" frame-ancestors 'none'; base-uri 'none'",
        ),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["SESSION_COOKIE", "SecurityHeaders", "create_admin"]
