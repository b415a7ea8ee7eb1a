"""Validation units: money, commands, fingerprints, configuration, database URLs; and the text
of paths and query strings over HTTP (SPEC §3.4)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from arus.errors import IdempotencyKeyRequired, ValidationError
from arus.ledger import commands
from arus.ledger.idempotency import fingerprint
from arus.ledger.money import INT64_MAX, parse_amount_minor, parse_currency
from arus.platform.config import ConfigError, load_settings
from arus.platform.db import sqlalchemy_url


@pytest.mark.parametrize("value", [1, 42, INT64_MAX])
def test_amounts_in_int64_range_are_accepted(value):
    assert parse_amount_minor(value, field="amount") == value


@pytest.mark.parametrize("value", [0, -1, INT64_MAX + 1, 1.0, 0.5, "1", True, None, [1]])
def test_amounts_outside_rules_are_refused_never_coerced(value):
    with pytest.raises(ValidationError):
        parse_amount_minor(value, field="amount")


@pytest.mark.parametrize("value", ["USD", "EUR", "JPY", "XAU"])
def test_currency_shape_is_three_upper_case_letters(value):
    assert parse_currency(value, field="currency") == value


@pytest.mark.parametrize("value", ["usd", "US", "USDT", "U$D", 840, None, ""])
def test_bad_currency_shapes_are_refused(value):
    with pytest.raises(ValidationError):
        parse_currency(value, field="currency")


def test_account_reference_by_uuid_is_an_id_and_otherwise_a_code():
    account_id = uuid.uuid4()
    assert commands.parse_account_ref(str(account_id), field="a").account_id == account_id
    assert commands.parse_account_ref("assets:bank", field="a").code == "assets:bank"
    with pytest.raises(ValidationError):
        commands.parse_account_ref("white space", field="a")


def test_entry_defaults_effective_date_to_today_utc():
    entry = commands.parse_new_entry(
        {"postings": [
            {"account": "a", "direction": "debit", "amount": 1},
            {"account": "b", "direction": "credit", "amount": 1},
        ]}
    )  # fmt: skip
    assert entry.effective_date == dt.datetime.now(dt.UTC).date()
    assert entry.metadata == {} and entry.description is None


def test_error_messages_point_at_the_field():
    with pytest.raises(ValidationError, match=r"postings\[1\]\.amount"):
        commands.parse_new_entry(
            {"postings": [
                {"account": "a", "direction": "debit", "amount": 1},
                {"account": "b", "direction": "credit", "amount": 1.5},
            ]}
        )  # fmt: skip


def test_metadata_size_is_limited():
    with pytest.raises(ValidationError, match="metadata"):
        commands.parse_new_account(
            {"code": "c", "name": "n", "type": "asset", "currency": "USD",
             "metadata": {"blob": "x" * (commands.MAX_METADATA_BYTES + 1)}}
        )  # fmt: skip


@pytest.mark.parametrize("key", [None, ""])
def test_missing_idempotency_key(key):
    with pytest.raises(IdempotencyKeyRequired):
        commands.parse_idempotency_key(key)


@pytest.mark.parametrize(
    ("key", "kind"),
    [(7, "a number"), (1.5, "a number"), (True, "a boolean"), (["k"], "an array"),
     ({"k": "v"}, "an object")],
)  # fmt: skip
def test_an_idempotency_key_that_is_not_a_string_is_refused_never_coerced(key, kind):
    with pytest.raises(ValidationError, match=f"^idempotency_key must be a string, not {kind}$"):
        commands.parse_idempotency_key(key, field="idempotency_key")


def test_idempotency_key_messages_name_the_header_by_default():
    with pytest.raises(IdempotencyKeyRequired, match="the Idempotency-Key header is required"):
        commands.parse_idempotency_key(None)
    with pytest.raises(ValidationError, match="Idempotency-Key header must be 1-255 printable"):
        commands.parse_idempotency_key("k\x00")


def test_fingerprint_is_canonical_and_bound_to_the_operation():
    a = fingerprint(operation="POST /v1/entries", body={"x": 1, "y": [1, 2]})
    b = fingerprint(operation="POST /v1/entries", body={"y": [1, 2], "x": 1})
    assert a == b
    assert a != fingerprint(operation="POST /v1/entries", body={"x": 1, "y": [2, 1]})
    assert a != fingerprint(operation="POST /v1/accounts", body={"x": 1, "y": [1, 2]})


def test_settings_are_validated_with_the_variable_name():
    with pytest.raises(ConfigError, match="ARUS_OUTBOX_TRANSPORT"):
        load_settings({"ARUS_OUTBOX_TRANSPORT": "carrier-pigeon"})
    with pytest.raises(ConfigError, match="ARUS_DB_POOL_SIZE"):
        load_settings({"ARUS_DB_POOL_SIZE": "many"})
    settings = load_settings({"ARUS_DATABASE_URL": "postgresql://u:p@h:5/d"})
    assert settings.outbox_transport == "log" and settings.relay_batch_size == 100


def test_plain_postgres_url_gets_the_pg8000_driver():
    url, connect_args = sqlalchemy_url("postgresql://alice:s3cret@db.internal:6543/books")
    assert url.drivername == "postgresql+pg8000"
    assert (url.host, url.port, url.database, url.username) == (
        "db.internal",
        6543,
        "books",
        "alice",
    )
    assert connect_args == {}


def test_socket_directory_url_becomes_unix_sock():
    url, connect_args = sqlalchemy_url("postgresql://postgres:@/postgres?host=/tmp/pg")
    assert connect_args == {"unix_sock": "/tmp/pg/.s.PGSQL.5432"}
    assert url.host is None and "host" not in url.query


def test_non_postgres_url_is_refused():
    with pytest.raises(ConfigError):
        sqlalchemy_url("mysql://u:p@h/d")
    with pytest.raises(ConfigError):
        sqlalchemy_url("not a url")


# --- the text of paths and query strings, over HTTP (through the functions) -----------------

UNKNOWN_KEY = "arus_0000000000000000_" + "x" * 43


def _raw(path: bytes, query: bytes = b"") -> dict[str, str]:
    """The request's path and query as a server passes them on: its bytes, percent-decoded
    in the path, as sent in the query (PEP 3333)."""
    return {"PATH_INFO": path.decode("latin-1"), "QUERY_STRING": query.decode("latin-1")}


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        (b"/v1/accounts/\x00", b"", "path parameter ref contains a NUL character"),
        (b"/v1/accounts/ca\x00sh/postings", b"", "path parameter ref contains a NUL"),
        (b"/v1/accounts/\xff", b"", "path parameter ref is not valid UTF-8"),
        # A lone surrogate (U+D800) as a client can send one: the bytes it would encode to.
        (b"/v1/entries/\xed\xa0\x80", b"", "path parameter entry_id is not valid UTF-8"),
        (b"/v1/accounts/cash/balance", b"at=%00", "query parameter at contains a NUL"),
        (b"/v1/accounts/cash/postings", b"cursor=%C3", "query parameter cursor is not valid"),
        (b"/v1/balances", b"as_of=2026-01-01\xff", "query parameter as_of is not valid UTF-8"),
        (b"/v1/trial-balance", b"x=%00", "query parameter x contains a NUL character"),
    ],
)
def test_a_path_or_query_value_that_is_not_text_is_a_validation_error(
    api, ledger, path, query, message
):
    response = api.get("/", key=ledger.read_key, environ_overrides=_raw(path, query))
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and message in error["message"], error
    # Refused before it ran, a request with a bad key still answers 401 first.
    assert api.get("/", key=UNKNOWN_KEY, environ_overrides=_raw(path, query)).status_code == 401


def test_a_mutation_path_that_is_not_text_is_a_validation_error_after_the_key_check(api, ledger):
    for action in (b"reverse", b"post", b"void"):
        raw = _raw(b"/v1/entries/\x00/" + action)
        response = api.post("/", key=ledger.write_key, idempotency_key="k", json={},
                            environ_overrides=raw)  # fmt: skip
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["error"] == {"code": "validation_error",
                                                "message": "path parameter entry_id contains "
                                                           "a NUL character"}  # fmt: skip
        assert api.post("/", key=ledger.read_key, idempotency_key="k", json={},
                        environ_overrides=raw).status_code == 403  # fmt: skip
    # The query of a mutation is held to the same rule, though no mutation reads one.
    response = api.post("/", key=ledger.write_key, json={}, environ_overrides=_raw(
        b"/v1/entries/batch", b"atomic=%FF"))  # fmt: skip
    assert response.status_code == 422
    assert response.get_json()["error"]["message"] == "query parameter atomic is not valid UTF-8"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("ARUS_DB_IAM_AUTH", "ture", "valid boolean"),  # a typo was read as false
        ("ARUS_LOG_LEVEL", "verbose", "'DEBUG', 'INFO'"),
        ("ARUS_DB_MAX_OVERFLOW", "-1", "greater than or equal to 0"),
        ("ARUS_MAX_BODY_BYTES", "10", "greater than or equal to 1024"),
        ("ARUS_MAX_BATCH_BODY_BYTES", "lots", "valid integer"),
        ("ARUS_RELAY_TIME_BUDGET_S", "0", "greater than 0"),
        ("ARUS_LOG_FORMAT", "xml", "'json' or 'text'"),
        ("ARUS_DB_IP_TYPE", "carrier", "'public', 'private' or 'psc'"),
    ],
)
def test_a_variable_written_wrong_is_an_error_naming_it(variable, value, says):
    with pytest.raises(ConfigError, match=variable) as refused:
        load_settings({variable: value})
    assert says in str(refused.value) and repr(value).lower() in str(refused.value).lower()


def test_a_secret_is_never_repeated_in_a_configuration_error():
    with pytest.raises(ConfigError, match="ARUS_OPERATOR_TOKEN") as refused:
        load_settings({"ARUS_OPERATOR_TOKEN": "hunter2"})
    assert "hunter2" not in str(refused.value)


def test_settings_parse_their_written_forms():
    settings = load_settings({"ARUS_DB_IAM_AUTH": "on", "ARUS_LOG_LEVEL": "debug",
                              "ARUS_OUTBOX_TRANSPORT": "LOG", "ARUS_DB_POOL_SIZE": "",
                              "ARUS_RELAY_TIME_BUDGET_S": "2.5", "K_SERVICE": "api"})  # fmt: skip
    assert settings.db_iam_auth is True and settings.log_level == "DEBUG"
    assert settings.outbox_transport == "log" and settings.db_pool_size == 5  # empty is unset
    assert settings.relay_time_budget_s == 2.5 and settings.log_format == "json"
