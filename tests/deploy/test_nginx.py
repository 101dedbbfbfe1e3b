"""The shipped nginx site config: `nginx -t`, and a real nginx in front of a real receiver."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import (
    ROOT,
    SECRET,
    delivery,
    encode,
    free_port,
    process_env,
    signed_headers,
    start_process,
    wait_for,
)

SITE = ROOT / "deploy" / "nginx" / "mta-receiver.conf"
CERT = "/etc/letsencrypt/live/receiver.example.com/fullchain.pem"
KEY = "/etc/letsencrypt/live/receiver.example.com/privkey.pem"

pytestmark = [
    pytest.mark.skipif(
        shutil.which("nginx") is None,
        reason="nginx is not installed (.ci/run installs nginx-light; locally: apt-get install"
        " nginx-light)",
    ),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]


@dataclass
class Nginx:
    """A prefix directory with a throwaway certificate and an nginx.conf around a site."""

    prefix: Path

    @property
    def cert(self) -> Path:
        return self.prefix / "cert.pem"

    def write(self, site: str) -> Path:
        """An nginx.conf that includes ``site`` (with the throwaway certificate)."""
        for placeholder, path in ((CERT, self.cert), (KEY, self.prefix / "key.pem")):
            assert placeholder in site, f"the shipped site no longer uses {placeholder}"
            site = site.replace(placeholder, str(path))
        (self.prefix / "site.conf").write_text(site)
        temps = " ".join(
            f"{kind}_temp_path {self.prefix / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            "worker_processes 1;\n"
            "events { worker_connections 64; }\n"
            f"http {{\n  access_log {self.prefix / 'access.log'};\n  {temps}\n"
            f"  include {self.prefix / 'site.conf'};\n}}\n"
        )
        return conf

    def command(self, conf: Path, *extra: str, directives: str = "") -> list[str]:
        error_log = str(self.prefix / "error.log")
        return [
            "nginx",
            *extra,
            "-e",
            error_log,
            "-c",
            str(conf),
            "-p",
            str(self.prefix),
            "-g",
            f"pid {self.prefix / 'nginx.pid'}; error_log {error_log}; {directives}",
        ]


@pytest.fixture
def nginx() -> Iterator[Nginx]:
    """A world-traversable prefix (nginx workers run as nobody) with a self-signed cert."""
    with tempfile.TemporaryDirectory(prefix="nginx-test-") as tmp:
        prefix = Path(tmp)
        prefix.chmod(0o755)
        openssl = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
        subprocess.run(
            [
                *openssl.split(),
                *("-addext", "subjectAltName=IP:127.0.0.1"),
                *("-keyout", str(prefix / "key.pem"), "-out", str(prefix / "cert.pem")),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield Nginx(prefix)


def on_loopback(site: str, upstream: int, http: int, https: int) -> str:
    """The shipped site, moved to free loopback ports (IPv4 only) and a test upstream."""
    replacements = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen [::]:80;": "",
        "listen 443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        "listen [::]:443 ssl;": "",
    }
    for old, new in replacements.items():
        assert site.count(old) == 1, f"the shipped site no longer has {old!r}"
        site = site.replace(old, new)
    return site


def test_shipped_site_passes_nginx_t(nginx: Nginx) -> None:
    """`nginx -t` accepts the site config as shipped (only the certificate paths swapped)."""
    conf = nginx.write(SITE.read_text())
    result = subprocess.run(
        nginx.command(conf, "-t"), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_shipped_site_keeps_the_receivers_limits() -> None:
    """The body limit matches RECEIVER_MAX_BODY_BYTES and the forwarded headers are set."""
    site = SITE.read_text()
    assert "client_max_body_size 256k;" in site  # 262144, the receiver's default
    for line in (
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Host $host;",
        "proxy_http_version 1.1;",
    ):
        assert line in site


def rejections(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("outcome") == "bad_signature"]


@pytest.mark.slow
def test_signed_webhook_through_nginx_with_the_real_client_address(
    nginx: Nginx, tmp_path: Path, processes: list[Any]
) -> None:
    """Through nginx (TLS, loopback): signed → 200, forged → 401 logged with the real client.

    The test client connects from 127.0.0.2 and sends a forged X-Forwarded-For; nginx
    appends the real peer, and the receiver (trusting 127.0.0.1, i.e. nginx) logs 127.0.0.2.
    """
    receiver = start_process(tmp_path, process_env(tmp_path))
    processes.append(receiver)
    upstream = int(receiver.url.rsplit(":", 1)[1])
    https = free_port()
    site = on_loopback(SITE.read_text(), upstream, free_port(), https)
    conf = nginx.write(site)
    server = subprocess.Popen(
        nginx.command(conf, directives="daemon off;"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        trust = ssl.create_default_context(cafile=str(nginx.cert))
        client = httpx.Client(
            base_url=f"https://127.0.0.1:{https}",
            transport=httpx.HTTPTransport(verify=trust, local_address="127.0.0.2"),
            timeout=10,
        )
        with client:

            def up() -> bool:
                assert server.poll() is None, (nginx.prefix / "error.log").read_text()
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, timeout=20, interval=0.05)
            body = encode(delivery())
            forged_xff = {"X-Forwarded-For": "203.0.113.66"}
            accepted = client.post(
                "/webhooks/mta", content=body, headers={**signed_headers(body), **forged_xff}
            )
            assert accepted.status_code == 200, accepted.text
            assert accepted.headers["x-receiver-outcome"] == "accepted"
            forged = client.post(
                "/webhooks/mta",
                content=body,
                headers={**signed_headers(body, "not-" + SECRET), **forged_xff},
            )
            assert forged.status_code == 401
            assert forged.json() == {"error": "bad_signature"}
            too_large = client.post(
                "/webhooks/mta", content=b"x" * (256 * 1024 + 1), headers=signed_headers(b"x")
            )
            assert too_large.status_code == 413  # nginx's own, before the receiver
    finally:
        server.terminate()
        server.wait(timeout=10)
    lines = wait_for(lambda: rejections(receiver.output()))
    assert [line["client"] for line in lines] == ["127.0.0.2"]
