"""deploy/: what can be checked without a container engine or a cluster."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from receiver.errors import ConfigError
from receiver.settings import Settings

from ..conftest import ROOT, SECRET

DEPLOY = ROOT / "deploy"


def yaml_documents(path: Path) -> list[Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (it is in '.[dev]')")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


class _Recording(dict[str, str]):
    """An environment that records every variable the settings look up."""

    def __init__(self) -> None:
        super().__init__(RECEIVER_WEBHOOK_SECRETS=SECRET)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def settings_variables() -> set[str]:
    """Every RECEIVER_* variable the settings read: those looked up by ``from_env`` and
    those named in receiver/settings.py (lookups behind a condition)."""
    env = _Recording()
    Settings.from_env(env)
    source = (ROOT / "receiver" / "settings.py").read_text()
    named = {f"RECEIVER_{name}" for name in re.findall(r'get\("([A-Z0-9_]+)"\)', source)}
    return {name for name in env.asked | named if name.startswith("RECEIVER_")}


def documented(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file, commented out or not."""
    pattern = re.compile(r"^#?\s*(RECEIVER_[A-Z0-9_]+)=(.*)$")
    return {m[1]: m[2] for line in path.read_text().splitlines() if (m := pattern.match(line))}


def test_example_env_documents_every_setting() -> None:
    """Every RECEIVER_* variable read by the settings is in deploy/example.env, and
    example.env names no variable the settings do not read (a typo would do nothing)."""
    read, listed = settings_variables(), set(documented(DEPLOY / "example.env"))
    assert "RECEIVER_FORWARDED_ALLOW_IPS" in read  # the recording does see lookups
    assert sorted(read - listed) == [], "settings missing from deploy/example.env"
    assert sorted(listed - read) == [], "deploy/example.env lists unknown variables"


def test_example_env_values_are_valid_settings() -> None:
    """The example env file, uncommented, builds valid settings once its placeholder
    secret is replaced, and refuses to start while it is not."""
    values = documented(DEPLOY / "example.env")
    del values["RECEIVER_WEBHOOK_SECRETS_FILE"]  # the alternative to the variable, not both
    env = {k: v for k, v in values.items() if v}
    with pytest.raises(ConfigError, match="placeholder"):
        Settings.from_env(env)
    Settings.from_env({**env, "RECEIVER_WEBHOOK_SECRETS": "a" * 128})


def test_compose_has_receiver_worker_postgres_and_caddy() -> None:
    """compose.yaml parses; Caddy alone publishes ports and is the one trusted proxy."""
    (compose,) = yaml_documents(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert set(services) == {"receiver", "worker", "postgres", "caddy"}
    assert [s for s, spec in services.items() if "ports" in spec] == ["caddy"]
    caddy_ip = services["caddy"]["networks"]["internal"]["ipv4_address"]
    for name in ("receiver", "worker"):
        environment = services[name]["environment"]
        assert environment["RECEIVER_FORWARDED_ALLOW_IPS"] == caddy_ip
        assert environment["RECEIVER_DATABASE_URL"].startswith("postgresql://")
    assert "--no-worker" in services["receiver"]["command"]
    assert services["worker"]["command"] == ["mta-receiver", "worker"]
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert "./caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]
    caddyfile = (DEPLOY / "caddy" / "Caddyfile").read_text()
    assert "reverse_proxy receiver:8000" in caddyfile
    assert "max_size 256KiB" in caddyfile


def test_dockerfile_is_slim_non_root_with_a_health_check() -> None:
    """The image: python:3.11-slim, a numeric non-root USER, HEALTHCHECK on /healthz."""
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms
    assert all(image == "python:3.11-slim" for image in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    text = "\n".join(lines)
    assert "pip install '.[postgres]'" in text
    assert re.search(r"HEALTHCHECK .*\n.*CMD \[\"python\", .*/healthz", text)
    assert 'CMD ["mta-receiver", "serve", "--host", "0.0.0.0"' in text


def test_kubernetes_deployment_probes_and_service() -> None:
    """Readiness on /readyz, liveness on /healthz, a Service selecting the pods."""
    (deployment,) = yaml_documents(DEPLOY / "kubernetes" / "deployment.yaml")
    (service,) = yaml_documents(DEPLOY / "kubernetes" / "service.yaml")
    assert deployment["kind"] == "Deployment"
    assert service["kind"] == "Service"
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    port_names = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def test_kustomize_builds_the_manifests() -> None:
    """`kubectl kustomize deploy/kubernetes` renders (offline) when kubectl is installed."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "kubernetes")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout
    assert "kind: Service" in result.stdout


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / "mta-receiver.service")
    return parser


def test_systemd_unit_has_the_expected_keys() -> None:
    """The unit runs `serve` on loopback, restarts on failure, stops gracefully, hardened."""
    service = unit()["Service"]
    assert service["ExecStart"].split()[1:] == ["serve", "--host", "127.0.0.1", "--port", "8000"]
    assert service["EnvironmentFile"] == "/etc/mta-receiver/receiver.env"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert service["DynamicUser"] == "yes"
    assert service["NoNewPrivileges"] == "yes"
    assert service["StateDirectory"] == "mta-receiver"
    assert int(service["LimitNOFILE"]) >= 65536  # idle sockets must not starve MTA's
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say (ExecStart pointed at this venv)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    executable = str(Path(sys.executable).parent / "mta-receiver")  # this venv's script
    if not Path(executable).exists():
        pytest.skip("the mta-receiver console script is not installed")
    text = (DEPLOY / "systemd" / "mta-receiver.service").read_text()
    assert "/opt/mta-receiver/bin/mta-receiver" in text
    copy = tmp_path / "mta-receiver.service"
    copy.write_text(text.replace("/opt/mta-receiver/bin/mta-receiver", executable))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # verify exits 0 even for unknown keys or bad values; it only prints them.
    assert [line for line in result.stderr.splitlines() if copy.name in line] == []
