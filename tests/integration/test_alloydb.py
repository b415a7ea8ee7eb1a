"""An AlloyDB placement (SPEC §9) through the real AlloyDB Connector class, with only its network
boundary replaced: `Connector.connect` hands back a pg8000 connection to the test database
instead of asking the AlloyDB Admin API for an address and certificate. Above it, everything is
the production code: the placement's settings, the engine factory, the creator, the per-process
connector and the password sources."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pg8000.dbapi
import pytest
from arus.platform import alloydb
from arus.platform.config import ConfigError, Settings
from arus.platform.db import create_engine, sqlalchemy_url
from arus.web.app import create_app
from google.cloud.alloydb.connector import Connector, IPTypes, RefreshStrategy

from tests.support.ledgers import Api, new_ledger

INSTANCE = "projects/books-prod/locations/europe-west1/clusters/arus/instances/arus-1"


@dataclass
class FakeAlloyDb:
    """What crossed the boundary: the connectors made (their arguments) and the connections."""

    created: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def fake_alloydb(monkeypatch, tmp_path: Path, app_settings: Settings) -> Iterator[FakeAlloyDb]:
    """Each connection the connector is asked for is opened on the test database as the
    application's login."""
    adc = tmp_path / "adc.json"
    adc.write_text('{"type": "authorized_user", "client_id": "t", "client_secret": "t",'
                   ' "refresh_token": "t"}')  # fmt: skip
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    url, connect_args = sqlalchemy_url(app_settings.database_url or "")
    fake = FakeAlloyDb()
    original_init = Connector.__init__

    def init(self: Connector, **kwargs: Any) -> None:
        fake.created.append(kwargs)
        original_init(self, **kwargs)

    def connect(self: Connector, instance: str, driver: str, **kwargs: Any) -> Any:
        fake.calls.append({"instance": instance, "driver": driver, **kwargs})
        return pg8000.dbapi.connect(user=url.username, database=url.database,
                                    unix_sock=connect_args["unix_sock"])  # fmt: skip

    monkeypatch.setattr(Connector, "__init__", init)
    monkeypatch.setattr(Connector, "connect", connect)
    alloydb.close_connectors()
    yield fake
    alloydb.close_connectors()


def test_a_key_of_an_alloydb_placement_is_served_through_the_connector(
    fake_alloydb, settings, app_settings
):
    ledger = new_ledger(settings, "alloy")  # the test database stands for the instance
    key_id_and_secret = ledger.write_key.removeprefix("arus_")
    placed = dataclasses.replace(
        app_settings, placements=(("alloy", INSTANCE),), db_user="arus_api",
        db_password="s3cret", db_ip_type="private",
    )  # fmt: skip
    assert placed.for_placement("alloy").alloydb_instance == INSTANCE
    client = create_app(placed).test_client()
    api = Api(client, client)
    answer = api.post(
        "/v1/accounts",
        key=f"arus_alloy_{key_id_and_secret}",
        json={"code": "cash", "name": "Cash", "type": "asset", "currency": "USD"},
    )
    assert answer.status_code == 201, answer.get_json()
    assert fake_alloydb.created == [
        {"ip_type": IPTypes.PRIVATE, "enable_iam_auth": False,
         "refresh_strategy": RefreshStrategy.LAZY}
    ]  # fmt: skip
    calls = fake_alloydb.calls
    assert calls and all(
        (c["instance"], c["driver"], c["user"], c["db"], c["password"])
        == (INSTANCE, "pg8000", "arus_api", "arus", "s3cret") for c in calls
    )  # fmt: skip


def test_iam_auth_sends_no_password(fake_alloydb, app_settings):
    settings = dataclasses.replace(app_settings, database_url=None, alloydb_instance=INSTANCE,
                                   db_iam_auth=True)  # fmt: skip
    engine = create_engine(settings)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()
    assert fake_alloydb.calls and "password" not in fake_alloydb.calls[0]


@pytest.mark.parametrize("instance", ["arus-1", "projects/p/instances/i", "projects/p/locations/r"])
def test_an_instance_that_is_no_instance_uri_is_refused_at_start_up(instance):
    with pytest.raises(ConfigError, match="ARUS_ALLOYDB_INSTANCE"):
        create_engine(Settings(alloydb_instance=instance, db_password="x"))


def test_no_way_to_authenticate_is_refused_at_start_up():
    with pytest.raises(ConfigError, match="no database password for AlloyDB"):
        create_engine(Settings(alloydb_instance=INSTANCE))
