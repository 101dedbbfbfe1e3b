"""Behind a reverse proxy: trusted proxies, the client address, the webhook allow-list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver import Settings
from receiver.errors import ConfigError
from receiver.web.netpolicy import AllowList

from ..conftest import (
    SECRET,
    Process,
    delivery,
    encode,
    make_settings,
    process_env,
    running,
    signed_headers,
    start_process,
    wait_for,
)

BASE = {"RECEIVER_WEBHOOK_SECRETS": SECRET}


def from_env(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def post(process: Process, *, forged: bool = False, **headers: str) -> httpx.Response:
    """A webhook posted straight to ``process``, signed unless ``forged``."""
    body = encode(delivery())
    sent = {**signed_headers(body, "not-the-secret" if forged else SECRET), **headers}
    return httpx.post(f"{process.url}/webhooks/mta", content=body, headers=sent, timeout=10)


def log_lines(process: Process, outcome: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``process`` with this outcome."""
    lines = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("outcome") == outcome]


# --- settings -----------------------------------------------------------------------------


def test_defaults_trust_loopback_only_and_allow_every_source() -> None:
    """Out of the box only 127.0.0.1 is a trusted proxy and there is no allow-list."""
    settings = from_env()
    assert settings.forwarded_allow_ips == ("127.0.0.1",)
    assert settings.webhook_allow_networks == ()


def test_lists_are_read_and_trimmed() -> None:
    """Both variables are comma lists of addresses and CIDRs; blanks are dropped."""
    settings = from_env(
        RECEIVER_FORWARDED_ALLOW_IPS=" 10.0.0.5, 172.30.0.0/24,,::1 ",
        RECEIVER_WEBHOOK_ALLOW_NETWORKS="198.51.100.0/24, 2001:db8::/32",
    )
    assert settings.forwarded_allow_ips == ("10.0.0.5", "172.30.0.0/24", "::1")
    assert settings.webhook_allow_networks == ("198.51.100.0/24", "2001:db8::/32")


def test_star_trusts_every_peer_but_only_alone() -> None:
    """'*' is accepted as the only entry, refused next to others (a likely mistake)."""
    assert from_env(RECEIVER_FORWARDED_ALLOW_IPS="*").forwarded_allow_ips == ("*",)
    with pytest.raises(ConfigError, match="RECEIVER_FORWARDED_ALLOW_IPS"):
        from_env(RECEIVER_FORWARDED_ALLOW_IPS="*,10.0.0.1")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECEIVER_FORWARDED_ALLOW_IPS", "10.0.0.300"),
        ("RECEIVER_FORWARDED_ALLOW_IPS", "proxy.internal"),
        ("RECEIVER_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/33"),
        ("RECEIVER_WEBHOOK_ALLOW_NETWORKS", "198.51.100.0/24,nope"),
        ("RECEIVER_WEBHOOK_ALLOW_NETWORKS", "*"),
    ],
)
def test_bad_networks_are_refused_naming_the_variable(name: str, value: str) -> None:
    """A value uvicorn would silently ignore is a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        from_env(**{name: value})


def test_allow_list_matches_networks_and_refuses_what_it_cannot_check() -> None:
    """Inside: allowed; outside, unknown, non-IP: refused; IPv4-mapped IPv6 matches IPv4."""
    allow = AllowList.from_settings(("198.51.100.0/24", "2001:db8::/32"))
    assert allow is not None
    assert allow.allows("198.51.100.7")
    assert allow.allows("::ffff:198.51.100.7")
    assert allow.allows("2001:db8::1")
    assert not allow.allows("203.0.113.9")
    assert not allow.allows(None)
    assert not allow.allows("/run/receiver.sock")
    assert AllowList.from_settings(()) is None


# --- the allow-list in the app ------------------------------------------------------------


def test_allow_list_refuses_outside_sources_with_403_and_stores_nothing(tmp_path) -> None:
    """A client outside the allow-list gets 403 source_not_allowed, even when signed."""
    with running(make_settings(tmp_path, webhook_allow_networks=("10.0.0.0/8",))) as server:
        response = server.post(delivery())
        assert response.status_code == 403
        assert response.json() == {"error": "source_not_allowed"}
        assert server.query("SELECT count(*) FROM events") == [(0,)]


def test_allow_list_lets_inside_sources_through(tmp_path) -> None:
    """A client inside the allow-list is verified and stored as usual."""
    with running(make_settings(tmp_path, webhook_allow_networks=("127.0.0.0/8",))) as server:
        assert server.post(delivery()).status_code == 200
        assert server.client.get("/healthz").status_code == 200
        assert server.query("SELECT count(*) FROM events") == [(1,)]


# --- the real `serve` command: uvicorn's proxy headers --------------------------------------


@pytest.mark.slow
def test_trusted_proxy_sets_the_client_from_x_forwarded_for(tmp_path, processes) -> None:
    """From a trusted peer (127.0.0.1 by default) X-Forwarded-For names the logged client."""
    process = start_process(tmp_path, process_env(tmp_path))
    processes.append(process)
    response = post(process, forged=True, **{"X-Forwarded-For": "198.51.100.7"})
    assert response.status_code == 401
    lines = wait_for(lambda: log_lines(process, "bad_signature"))
    assert lines[0]["client"] == "198.51.100.7"


@pytest.mark.slow
def test_untrusted_peer_cannot_choose_its_client_address(tmp_path, processes) -> None:
    """When the peer is not a trusted proxy its X-Forwarded-For is ignored."""
    env = process_env(tmp_path, RECEIVER_FORWARDED_ALLOW_IPS="10.9.9.9")
    process = start_process(tmp_path, env)
    processes.append(process)
    response = post(process, forged=True, **{"X-Forwarded-For": "198.51.100.7"})
    assert response.status_code == 401
    lines = wait_for(lambda: log_lines(process, "bad_signature"))
    assert lines[0]["client"] == "127.0.0.1"


@pytest.mark.slow
def test_allow_list_checks_the_forwarded_client(tmp_path, processes) -> None:
    """The allow-list sees the address after proxy headers: 200 inside it, 403 outside."""
    env = process_env(tmp_path, RECEIVER_WEBHOOK_ALLOW_NETWORKS="198.51.100.0/24")
    process = start_process(tmp_path, env)
    processes.append(process)
    assert post(process, **{"X-Forwarded-For": "198.51.100.7"}).status_code == 200
    outside = post(process, **{"X-Forwarded-For": "203.0.113.9"})
    assert outside.status_code == 403
    assert outside.json() == {"error": "source_not_allowed"}
    assert post(process).status_code == 403  # the proxy itself (127.0.0.1) is not a source
    lines = wait_for(lambda: log_lines(process, "source_not_allowed"))
    assert [line["client"] for line in lines] == ["203.0.113.9", "127.0.0.1"]


@pytest.mark.slow
def test_bad_allow_list_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    """A malformed network stops `serve` with a non-zero exit and the variable's name."""
    env = process_env(tmp_path, RECEIVER_WEBHOOK_ALLOW_NETWORKS="198.51.100.0/24,10.0.0.0/40")
    process = start_process(tmp_path, env, wait=False)
    assert process.proc.wait(timeout=20) != 0
    assert "RECEIVER_WEBHOOK_ALLOW_NETWORKS" in process.output()
    assert "10.0.0.0/40" in process.output()
