"""Placements in the settings and in the keys (SPEC §9): parsed once, refused with the variable's
name, and a key that names its placement, or names none and means `main`."""

from __future__ import annotations

import pytest
from arus.errors import Unauthenticated
from arus.ledger.access import format_key, parse_credentials
from arus.platform.config import ConfigError, UnknownPlacement, load_settings

SECRET = "S" * 43
KEY_ID = "0123456789abcdef"


def test_placements_name_their_databases_in_order():
    settings = load_settings({"ARUS_PLACEMENTS": "east=postgresql://u:p@h1/d, west=p:r:i"})
    assert settings.placement_names == ("east", "west")
    east, west = settings.each_placement()
    assert (east.placement, east.database_url, east.cloudsql_instance) == (
        "east", "postgresql://u:p@h1/d", None)  # fmt: skip
    assert (west.placement, west.database_url, west.cloudsql_instance) == ("west", None, "p:r:i")
    assert east.placements == () and east.for_placement("main") is east  # one database now


def test_an_alloydb_instance_uri_is_an_alloydb_placement():
    uri = "projects/p/locations/r/clusters/c/instances/i"
    settings = load_settings({"ARUS_PLACEMENTS": f"alloy={uri}"})
    alloy = settings.for_placement("alloy")
    assert (alloy.alloydb_instance, alloy.cloudsql_instance, alloy.database_url) == (
        uri,
        None,
        None,
    )


def test_without_placements_there_is_one_main():
    settings = load_settings({"ARUS_DATABASE_URL": "postgresql://u@h/d"})
    assert settings.placement_names == ("main",)
    assert settings.for_placement("main") is settings
    with pytest.raises(UnknownPlacement):
        settings.for_placement("east")


@pytest.mark.parametrize(
    "value", ["east", "East=postgresql://h/d", "east=", "=postgresql://h/d",
              "east=postgresql://h/d,east=postgresql://h/e", "e_ast=postgresql://h/d"],
)  # fmt: skip
def test_a_placement_list_written_wrong_is_an_error_naming_the_variable(value):
    with pytest.raises(ConfigError, match=r"^ARUS_PLACEMENTS: ") as refused:
        load_settings({"ARUS_PLACEMENTS": value})
    assert "postgresql://" not in str(refused.value)  # a URL may carry a password


def test_a_job_login_of_its_own_on_every_placement():
    settings = load_settings({"ARUS_PLACEMENTS": "east=postgresql://api@h1/d",
                              "ARUS_RELAY_PLACEMENTS": "east=postgresql://relay@h1/d"})  # fmt: skip
    assert settings.for_job("relay").for_placement("east").database_url == (
        "postgresql://relay@h1/d")  # fmt: skip
    assert settings.for_job("close").for_placement("east").database_url == (
        "postgresql://api@h1/d")  # fmt: skip


@pytest.mark.parametrize(("placement", "key"), [
    ("east", f"arus_east_{KEY_ID}_{SECRET}"),
    ("us-west-2", f"arus_us-west-2_{KEY_ID}_{SECRET}"),
    ("main", f"arus_{KEY_ID}_{SECRET}"),  # every key issued before placements
    ("main", f"arus_main_{KEY_ID}_{SECRET}"),
])  # fmt: skip
def test_a_key_names_its_placement(placement, key):
    credentials = parse_credentials(f"Bearer {key}")
    assert (credentials.placement, credentials.key_id) == (placement, KEY_ID)


@pytest.mark.parametrize("key", [
    f"arus_East_{KEY_ID}_{SECRET}", f"arus__{KEY_ID}_{SECRET}",
    f"arus_{'a' * 32}_{KEY_ID}_{SECRET}", f"arus_9east_{KEY_ID}_{SECRET}",
])  # fmt: skip
def test_a_placement_name_that_cannot_be_one_is_a_malformed_key(key):
    with pytest.raises(Unauthenticated, match="malformed"):
        parse_credentials(f"Bearer {key}")


def test_keys_are_formatted_as_they_are_parsed():
    for placement in ("main", "east"):
        key = format_key(placement, KEY_ID, SECRET)
        assert parse_credentials(f"Bearer {key}").placement == placement
    assert format_key("main", KEY_ID, SECRET) == f"arus_{KEY_ID}_{SECRET}"
