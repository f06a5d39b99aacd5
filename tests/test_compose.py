"""docker-compose.yml, the production shape, as Compose itself reads it (``docker compose config``).

Compose interpolates the environment and merges the anchors, so the assertions are on what each
service would really get: every PromptLooper service on DATABASE_URL (the dashboards as the
read-only role), no secret written in the file, the workers' command, and the start order
(PostgreSQL healthy → setup done → the rest). The Compose v2 plugin is used when Docker has it,
else Debian's Compose v1 (``docker-compose``, which scripts/install.sh --test installs); neither
present is a failure, not a skip: the file would go unchecked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {"POSTGRES_PASSWORD": "pg-Secret-1", "PROMPTLOOPER_READER_PASSWORD": "reader-Secret-2",
           "JUPYTER_TOKEN": "lab-Secret-3", "PROMPTLOOPER_MCP_KEY": "mcp-Secret-4",
           "PROMPTLOOPER_DASHBOARD_TOKEN": "dash-Secret-5"}
APP_SERVICES = {"setup", "worker", "jupyter", "mcp", "dashboard"}


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` (the v2 plugin) nor `docker-compose` is installed: "
                "scripts/install.sh --test apt-installs Debian's docker-compose", pytrace=False)


def _config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith(("PROMPTLOOPER_", "COMPOSE_"))}
    # --env-file: an empty file, so that a developer's own .env beside the compose file is not read.
    with tempfile.NamedTemporaryFile(suffix=".env") as empty:
        return subprocess.run([*_compose(), "--env-file", empty.name, "-f", str(COMPOSE), "config"], cwd=ROOT,
                              env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    done = _config(SECRETS)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _url(service: dict[str, Any]) -> str:
    return str(service["environment"]["DATABASE_URL"])


def test_every_promptlooper_service_uses_the_database_url_of_the_environment(config: dict[str, Any]) -> None:
    services = config["services"]
    assert APP_SERVICES | {"postgres"} == set(services)
    for name in APP_SERVICES:
        url = _url(services[name])
        assert re.fullmatch(r"postgresql://\w+:[^@]+@postgres:5432/promptlooper", url), (name, url)
        assert "PROMPTLOOPER_DB" not in services[name]["environment"], f"{name}: PROMPTLOOPER_DB would outrank DATABASE_URL"
    writers = {_url(services[n]) for n in APP_SERVICES - {"dashboard"}}
    assert writers == {f"postgresql://promptlooper:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/promptlooper"}
    # The dashboards connect as the read-only role that setup grants, never as the owner.
    assert _url(services["dashboard"]) == (f"postgresql://promptlooper_reader:{SECRETS['PROMPTLOOPER_READER_PASSWORD']}"
                                           "@postgres:5432/promptlooper")
    assert services["setup"]["command"][:4] == ["promptlooper", "db", "reader-role", "promptlooper_reader"]
    # Nor may the image shadow it: PROMPTLOOPER_DB outranks DATABASE_URL (store/db.default_path).
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"^\s*(ENV\s+)?PROMPTLOOPER_DB=", dockerfile, re.M)
    assert '".[postgres]"' in dockerfile


def test_secrets_come_from_the_environment_and_none_is_written_in_the_file(config: dict[str, Any]) -> None:
    raw = COMPOSE.read_text()
    for value in SECRETS.values():
        assert value not in raw
    services = config["services"]
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|_KEY$|SECRET", key) and value:
                assert value in SECRETS.values(), f"{name}.{key} is not from the environment: {value!r}"
    assert services["mcp"]["environment"]["PROMPTLOOPER_MCP_KEY"] == SECRETS["PROMPTLOOPER_MCP_KEY"]
    assert services["jupyter"]["environment"]["JUPYTER_TOKEN"] == SECRETS["JUPYTER_TOKEN"]
    assert services["dashboard"]["environment"]["PROMPTLOOPER_DASHBOARD_TOKEN"] == SECRETS["PROMPTLOOPER_DASHBOARD_TOKEN"]
    # The dashboards' kernels need no writer's password at all.
    assert SECRETS["POSTGRES_PASSWORD"] not in str(services["dashboard"])


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_a_missing_secret_stops_compose_with_its_name(missing: str) -> None:
    done = _config({k: v for k, v in SECRETS.items() if k != missing})
    assert done.returncode != 0 and missing in done.stderr


def test_the_workers_and_the_start_order(config: dict[str, Any]) -> None:
    services = config["services"]
    worker = services["worker"]
    assert worker["command"] == ["promptlooper", "worker"]
    assert worker["deploy"]["replicas"] >= 2
    postgres = services["postgres"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "pgdata" in str(postgres["volumes"]) and "pgdata" in config["volumes"]
    assert _conditions(services["setup"]) == {"postgres": "service_healthy"}
    assert services["setup"]["restart"] == "no"
    for name in APP_SERVICES - {"setup"}:
        assert _conditions(services[name]) == {"setup": "service_completed_successfully"}, name


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    # Compose v2 adds keys of its own (required: true, restart: false) beside the condition.
    return {dep: spec["condition"] for dep, spec in service["depends_on"].items()}


def test_published_ports_stay_on_this_machine_unless_the_operator_says(config: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in config["services"].items() if s.get("ports")}
    assert set(published) == {"jupyter", "mcp", "dashboard"}
    for name, ports in published.items():
        for port in ports:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)
    assert "--host" in config["services"]["mcp"]["command"]  # inside the network, behind the bearer key
