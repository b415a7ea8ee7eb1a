"""Structured log fields reach the JSON line, from every module that attaches them (issue 9)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from arus.platform.logs import JsonFormatter, TextFormatter
from arus_client import reference_consumer, shadow
from arus_client.client import ArusClient

from tests.support.ledgers import REPO

SOURCES = [
    *(REPO / "shared/arus").rglob("*.py"),
    *(REPO / "clients/python/arus_client").rglob("*.py"),
]
EXTRA_KEYS = re.compile(r"extra=\{([^}]*)\}")


class Lines(logging.Handler):
    """Every record, formatted as the deployed functions format it."""

    def __init__(self) -> None:
        super().__init__()
        self.json: list[dict[str, object]] = []
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.json.append(json.loads(JsonFormatter().format(record)))
        self.text.append(TextFormatter("%(levelname)s %(name)s: %(message)s").format(record))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def test_a_shadow_drain_logs_its_figures(lines, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'consumer.sqlite3'}")
    shadow.create_tables(engine)
    with ArusClient("http://127.0.0.1:9", "arus_0123456789abcdef_" + "A" * 43) as client:
        shadow.drain(engine, client, shadow.ShadowConfig(namespace="logs"))
    engine.dispose()
    (entry,) = [e for e in lines.json if e["message"] == "shadow drain"]
    assert entry["shadow_drain"] == shadow.DrainResult().to_json()
    assert entry["logger"] == "arus_client.shadow" and entry["severity"] == "INFO"
    assert any('"shadow_drain"' in line for line in lines.text)


def test_a_consume_run_logs_its_counts(lines):
    """The reference consumer's summary line, as `consume_kafka` writes it."""
    counts = {"received": 3, "applied": 2, "duplicates": 1, "invalid": 0, "ledger_ids": ["l"]}
    reference_consumer.log.info("consumed", extra={"consume": counts})
    (entry,) = [e for e in lines.json if e["message"] == "consumed"]
    assert entry["consume"] == counts and entry["logger"] == "arus_client.reference_consumer"


def test_every_extra_field_in_the_code_reaches_the_json_line():
    keys = {
        key
        for source in SOURCES
        for match in EXTRA_KEYS.finditer(source.read_text())
        for key in re.findall(r'"([a-z_]+)":', match.group(1))
    }
    assert {"relay", "close", "consume", "shadow_drain", "outbox_id"} <= keys, keys
    for key in sorted(keys):
        record = logging.getLogger("arus.test").makeRecord(
            "arus.test", logging.INFO, __file__, 1, "message", None, None, extra={key: {"n": 1}}
        )
        assert json.loads(JsonFormatter().format(record))[key] == {"n": 1}, key


def test_an_extra_field_never_overwrites_the_entry_itself():
    record = logging.getLogger("arus.test").makeRecord(
        "arus.test", logging.WARNING, __file__, 1, "real", None, None, extra={"severity": "DEBUG"}
    )
    assert json.loads(JsonFormatter().format(record))["severity"] == "WARNING"
