"""The /admin dashboard: off without a password, login, throttle, cookie, CSRF, actions."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver import Context, Event, Registry, Settings
from receiver.admin import SESSION_COOKIE, auth, create_admin
from receiver.admin.auth import LoginThrottle
from receiver.settings import Secret
from receiver.store import create_store

from ..conftest import (
    SECRET,
    delivery,
    encode,
    make_settings,
    running,
    signed_headers,
    wait_for,
)

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def admin_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings with the dashboard on and a fixed session secret."""
    values: dict[str, Any] = {
        "admin_password": Secret(PASSWORD),
        "session_secret": Secret("s" * 48),
        "max_attempts": 1,
        "admin_secure_cookies": False,  # uvicorn on loopback speaks plain HTTP
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


@dataclass
class Flaky:
    """A registry whose delivery-status handler fails while ``failing`` is set."""

    failing: bool = True
    seen: list[int] = field(default_factory=list)
    registry: Registry = field(default_factory=Registry)

    def __post_init__(self) -> None:
        @self.registry.on("delivery-status")
        async def flaky(event: Event, ctx: Context) -> None:
            self.seen.append(event.id)
            if self.failing:
                raise RuntimeError("CRM is down")


def query(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read (or write) the test's SQLite file on a connection of its own."""
    with contextlib.closing(sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))) as c:
        rows = c.execute(sql, params).fetchall()
        c.commit()
        return rows


def post(client: httpx.Client, payload: dict[str, Any]) -> None:
    """Deliver a signed webhook."""
    body = encode(payload)
    assert client.post("/webhooks/mta", content=body, headers=signed_headers(body)).is_success


def token(html: str) -> str:
    """The CSRF token of a page."""
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def log_in(client: httpx.Client, password: str = PASSWORD) -> str:
    """Log in through the form; return the session's CSRF token for actions."""
    form = client.get("/admin/login")
    response = client.post(
        "/admin/login", data={"csrf": token(form.text), "password": password, "next": "/admin/"}
    )
    assert response.status_code == 303, response.text
    return token(client.get("/admin/").text)


@contextlib.contextmanager
def dashboard(settings: Settings, registry: Registry | None = None) -> Iterator[httpx.Client]:
    """The whole receiver in uvicorn on loopback; a client that keeps its cookies."""
    with running(settings, registry) as server:
        server.client.follow_redirects = False
        yield server.client


def dead_letter(settings: Settings, client: httpx.Client, message_id: int = 700) -> int:
    """Post a delivery status whose handler fails once and for all; its event id."""
    post(client, delivery(message_id, status=6))
    rows = wait_for(
        lambda: query(
            settings,
            "SELECT id FROM events WHERE state = 'dead' AND message_id = ?",
            (str(message_id),),
        )
    )
    return int(rows[0][0])


def test_off_without_password(tmp_path: Path) -> None:
    """No RECEIVER_ADMIN_PASSWORD: every /admin path is 404, the rest still works."""
    with dashboard(make_settings(tmp_path)) as client:
        for path in ("/admin", "/admin/", "/admin/login", "/admin/events"):
            assert client.get(path).status_code == 404
        assert client.post("/admin/login", data={"password": ""}).status_code == 404
        assert client.get("/healthz").status_code == 200


def test_login_cookie_flags_and_wrong_password(tmp_path: Path) -> None:
    """A wrong password is a 401 page; the right one sets a HttpOnly, SameSite=Lax,
    Secure session cookie and redirects to the page asked for."""
    with dashboard(admin_settings(tmp_path, admin_secure_cookies=True)) as client:
        assert client.get("/admin/events").headers["location"] == "/admin/login?next=/admin/events"
        form = client.get("/admin/login")
        assert form.status_code == 200
        # A Secure cookie is not sent back over plain HTTP: carry it by hand.
        session = {"Cookie": form.headers["set-cookie"].split(";", 1)[0]}
        wrong = client.post(
            "/admin/login", data={"csrf": token(form.text), "password": "guess"}, headers=session
        )
        assert wrong.status_code == 401
        assert "Wrong password" in wrong.text
        right = client.post(
            "/admin/login",
            data={"csrf": token(wrong.text), "password": PASSWORD, "next": "/admin/events"},
            headers=session,
        )
        assert right.status_code == 303
        assert right.headers["location"] == "/admin/events"
        cookie = right.headers["set-cookie"].lower()
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "secure" in cookie
        session = {"Cookie": right.headers["set-cookie"].split(";", 1)[0]}
        assert client.get("/admin/events", headers=session).status_code == 200


def test_insecure_cookie_setting_and_headers(tmp_path: Path) -> None:
    """RECEIVER_ADMIN_INSECURE_COOKIES drops Secure (plain-HTTP local use); pages are never
    cached or framed; ``next`` never leaves the dashboard."""
    with dashboard(admin_settings(tmp_path)) as client:
        form = client.get("/admin/login")
        assert "secure" not in form.headers["set-cookie"].lower()
        assert form.headers["x-frame-options"] == "DENY"
        assert form.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
        response = client.post(
            "/admin/login",
            data={"csrf": token(form.text), "password": PASSWORD, "next": "//evil.example/"},
        )
        assert response.headers["location"] == "/admin/"
        assert client.get("/admin/events").status_code == 200


def test_settings_from_env() -> None:
    """The dashboard's variables are read, and the password never shows in a repr."""
    settings = Settings.from_env(
        {
            "RECEIVER_WEBHOOK_SECRETS": SECRET,
            "RECEIVER_ADMIN_PASSWORD": "hunter2",
            "RECEIVER_ADMIN_INSECURE_COOKIES": "true",
        }
    )
    assert settings.admin_password == Secret("hunter2")
    assert settings.session_secret is None
    assert settings.admin_secure_cookies is False
    assert "hunter2" not in repr(settings)
    assert Settings.from_env({"RECEIVER_WEBHOOK_SECRETS": SECRET}).admin_secure_cookies is True


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_login_throttled(tmp_path: Path) -> None:
    """Five wrong passwords: 429 with Retry-After, even for the right one; another
    address (127.0.0.2 on loopback) may still log in."""
    with running(admin_settings(tmp_path)) as server:
        client = server.client
        csrf = token(client.get("/admin/login").text)
        for _ in range(5):
            wrong = client.post("/admin/login", data={"csrf": csrf, "password": "nope"})
            assert wrong.status_code == 401
        throttled = client.post("/admin/login", data={"csrf": csrf, "password": PASSWORD})
        assert throttled.status_code == 429
        assert 290 <= int(throttled.headers["retry-after"]) <= 300
        other_address = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=server.url, transport=other_address) as other:
            assert log_in(other)


def test_parallel_login_attempts_are_throttled_too(tmp_path: Path) -> None:
    """Twelve wrong passwords whose bodies arrive together, after all their headers: five
    are checked (401), the rest are throttled (429). Checking the limit before reading
    the body let every one of them be checked."""
    with running(admin_settings(tmp_path)) as server:
        client = server.client
        csrf = token(client.get("/admin/login").text)
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        body = f"csrf={csrf}&password=nope".encode()
        head = (
            "POST /admin/login HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
        sockets = [socket.create_connection((host, int(port))) for _ in range(12)]
        try:
            for sock in sockets:
                sock.sendall(head)
            wait_for(lambda: client.get("/healthz").status_code == 200)  # headers read
            for sock in sockets:
                sock.sendall(body)
            statuses = sorted(sock.recv(4096).split(b" ", 2)[1].decode() for sock in sockets)
        finally:
            for sock in sockets:
                sock.close()
    assert statuses == ["401"] * 5 + ["429"] * 7


def test_session_ends_eight_hours_after_login_however_busy() -> None:
    """A session is good for SESSION_MAX_AGE from its login, even if its cookie was
    re-signed a minute ago; a session without a login time is no session."""
    password = auth.Password(Secret(PASSWORD), "s" * 48)
    session: dict[str, Any] = {}
    auth.log_in(session, password, now=1_000.0)

    assert auth.logged_in(session, password, now=1_000.0 + auth.SESSION_MAX_AGE - 1)
    assert not auth.logged_in(session, password, now=1_000.0 + auth.SESSION_MAX_AGE)
    assert not auth.logged_in({"operator": password.fingerprint}, password, now=1_000.0)


def test_random_session_secret_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without RECEIVER_SESSION_SECRET the dashboard works and says sessions won't last."""
    with caplog.at_level(logging.WARNING, "receiver.admin"):
        create_admin(admin_settings(tmp_path, session_secret=None), create_store("sqlite:///x"))
    assert "RECEIVER_SESSION_SECRET is not set" in caplog.text


def test_throttle_forgets_old_failures_and_bounds_memory() -> None:
    """Failures older than the window stop counting; at most max_clients are kept."""
    clock = Clock()
    throttle = LoginThrottle(clock, limit=2, window=10, max_clients=3)
    throttle.failed("a")
    clock.now += 6
    throttle.failed("a")
    assert throttle.retry_after("a") == pytest.approx(4)
    clock.now += 5
    assert throttle.retry_after("a") is None
    for client in "bcde":
        throttle.failed(client)
    assert len(throttle._failures) == 3


def test_csrf_required_for_every_action(tmp_path: Path) -> None:
    """A POST without the session's token, or with another one, is 403 and changes nothing;
    without a session at all, actions are 403 too."""
    settings = admin_settings(tmp_path)
    with dashboard(settings, Flaky().registry) as client:
        event_id = dead_letter(settings, client)
        no_session = client.post(f"/admin/events/{event_id}/retry", data={"csrf": "x"})
        assert no_session.status_code == 403
        csrf = log_in(client)
        for data in ({}, {"csrf": ""}, {"csrf": csrf[:-2] + "xx"}):
            assert client.post(f"/admin/events/{event_id}/retry", data=data).status_code == 403
        assert client.post("/admin/login", data={"password": PASSWORD}).status_code == 403
        assert client.post("/admin/logout").status_code == 403
        assert query(settings, "SELECT state FROM events WHERE id = ?", (event_id,)) == [("dead",)]
