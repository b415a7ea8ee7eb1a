"""`arus-consume`: the reference consumer (arus-client) over a real Kafka-protocol broker.

It reads only the event stream, its own tables and the API: the ledger it checks for drift is
served by `arus serve`, reached with a read key, never read from the ledger's tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from arus.platform.db import sqlalchemy_url

from tests.support.brokers import kafka_settings, post_entries, relay_to_kafka
from tests.support.http_faults import running_server
from tests.support.ledgers import REPO, injected_drift

ARUS_CONSUME = Path(sys.executable).parent / "arus-consume"  # the console script


@pytest.fixture(scope="module")
def api_url(database_url: str) -> Iterator[str]:
    with running_server(database_url) as base_url:
        yield base_url


def consumer_database_url(database_url: str) -> str:
    """The consumer keeps its tables in the same PostgreSQL here: a SQLAlchemy pg8000 URL."""
    url, connect_args = sqlalchemy_url(database_url)
    return url.update_query_dict(connect_args).render_as_string(hide_password=False)


def consume(database_url, api_url, broker, topic: str, group: str, key: str) -> tuple[int, dict]:
    result = subprocess.run(
        [str(ARUS_CONSUME), "--bootstrap", broker.bootstrap, "--topic", topic, "--group", group,
         "--timeout", "60", "--database-url", consumer_database_url(database_url),
         "--api-url", api_url, "--key", key],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_consume_mirrors_every_event_and_reports_drift_through_the_api(
    api,
    ledger,
    engine,
    settings,
    owner_database_url,
    api_url,
    empty_outbox,
    kafka_broker,
    kafka_topic,
):
    posted = post_entries(api, ledger, 6)
    relay_to_kafka(engine, kafka_settings(settings, kafka_broker, kafka_topic))
    # The consumer's own tables sit in the same PostgreSQL here, created by the owner's user
    # (the ledger's application role may create nothing).
    run = (owner_database_url, api_url, kafka_broker, kafka_topic, "cli-consumer",
           ledger.read_key)  # fmt: skip

    status, report = consume(*run)
    assert status == 0, report
    assert report["applied"] == len(posted) + 3, report  # 6 entries + 3 account.created
    assert report["drift"] == {}

    cash = "(SELECT id FROM accounts WHERE ledger_id = :l AND code = 'cash')"
    with injected_drift(engine, cash, 7, {"l": ledger.ledger_id}):
        status, report = consume(*run)
    assert status == 1, report
    assert list(report["drift"]) == [str(ledger.ledger_id)], report
    (moved,) = report["drift"][str(ledger.ledger_id)]
    assert moved["ledger_balance"] - moved["mirrored_balance"] == 7, moved


def test_the_reference_consumer_reads_no_ledger_table():
    """Only the event stream, its own tables (schema `consumer`) and the API."""
    import ast

    source = REPO / "clients/python/arus_client/reference_consumer.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    assert "arus" not in imported, sorted(imported)
    text = source.read_text()
    for ledger_table in ("FROM accounts", "FROM balances", "FROM entries", "FROM postings"):
        assert ledger_table not in text
