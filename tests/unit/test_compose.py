"""The docker-compose path, checked structurally (no Docker engine runs on the CI machines)."""

from __future__ import annotations

import yaml

from tests.support.ledgers import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_runs_postgres_redpanda_the_api_and_the_relay():
    assert {"postgres", "redpanda", "api", "relay", "migrate"} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["api"]["command"][:2] == ["arus", "serve"]
    assert COMPOSE["services"]["relay"]["command"][:2] == ["arus", "relay"]


def test_the_api_runs_the_server_shape_the_slow_client_test_proves():
    # tests/integration/test_slow_clients.py proves `arus serve --workers 2` (and the bench runs it)
    command = COMPOSE["services"]["api"]["command"]
    assert command[command.index("--workers") + 1] == "2"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert '"serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]' in dockerfile


def test_the_relay_uses_the_kafka_transport_on_redpanda():
    env = COMPOSE["services"]["relay"]["environment"]
    assert env["ARUS_OUTBOX_TRANSPORT"] == "kafka"
    assert env["ARUS_KAFKA_BOOTSTRAP"] == "redpanda:9092"
    assert env["ARUS_KAFKA_TOPIC"] == "arus.ledger.events"


def test_migrations_run_before_the_api_and_relay_start():
    for service in ("api", "relay"):
        depends = COMPOSE["services"][service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert COMPOSE["services"]["migrate"]["depends_on"]["postgres"]["condition"] == (
        "service_healthy"
    )


def test_published_ports_bind_to_loopback_only():
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_image_installs_the_project_with_kafka_and_runs_unprivileged():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install '.[kafka]'" in dockerfile
    assert "\nUSER arus" in dockerfile


def test_the_api_and_relay_run_as_the_application_role_and_only_migrate_as_the_owner():
    services = COMPOSE["services"]
    owner = services["postgres"]["environment"]["POSTGRES_USER"]
    for name in ("api", "relay"):
        url = services[name]["environment"]["ARUS_DATABASE_URL"]
        assert url.startswith("postgresql://arus_app_user:"), (name, url)
        assert f"//{owner}:" not in url, name
    migrate = services["migrate"]
    assert migrate["environment"]["ARUS_DATABASE_URL"].startswith(f"postgresql://{owner}:")
    command = " ".join(migrate["command"])
    assert "arus app-user arus_app_user --password-env" in command
    # Each job its own login, made with its own role (SPEC §3.6).
    for job in ("relay", "close"):
        assert f"arus app-user arus_{job}_user --role {job} --password-env" in command
        for name in ("api", "relay"):
            url = services[name]["environment"][f"ARUS_{job.upper()}_DATABASE_URL"]
            assert url.startswith(f"postgresql://arus_{job}_user:"), (name, job, url)
