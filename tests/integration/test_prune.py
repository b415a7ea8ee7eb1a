"""Retention (issue 11): idempotency claims and published events, opt-in, with a safe minimum."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
import sqlalchemy as sa
from arus.errors import ValidationError, domain_errors
from arus.jobs.prune import prune
from arus.jobs.verify import verify_all
from arus.platform.config import ConfigError, load_settings
from arus.platform.db import get_engine


def _age(engine, table: str, column: str, where: str, params: dict, days: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET {column} = {column} - make_interval(days => "
                             f"{days}) WHERE {where}"), params)  # fmt: skip


def test_without_retention_nothing_is_pruned(settings):
    assert prune(settings) == {"idempotency_keys": 0, "outbox_events": 0, "retention": "keep"}


def test_prune_deletes_only_what_is_past_its_window(api, ledger, engine, settings):
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    old_key, fresh_key = f"old-{uuid.uuid4().hex}", f"fresh-{uuid.uuid4().hex}"
    assert api.transfer(ledger, "cash", "equity", 5, key=old_key).status_code == 201
    assert api.transfer(ledger, "cash", "equity", 6, key=fresh_key).status_code == 201
    _age(engine, "idempotency_keys", "created_at", "ledger_id = :l AND key = :k",
         {"l": ledger.ledger_id, "k": old_key}, 8)  # fmt: skip
    with engine.begin() as conn:
        events = conn.execute(sa.text(
            "SELECT id FROM outbox_events WHERE ledger_id = :l ORDER BY id"),
            {"l": ledger.ledger_id}).scalars().all()  # fmt: skip
        published, unpublished = events[0], events[-1]
        conn.execute(sa.text("UPDATE outbox_events SET published_at = now() - interval '9 days' "
                             "WHERE id = :id"), {"id": published})  # fmt: skip
    counts = prune(dataclasses.replace(settings, idempotency_retention_days=7,
                                       outbox_retention_days=7))  # fmt: skip
    assert counts["idempotency_keys"] >= 1 and counts["outbox_events"] >= 1, counts
    with engine.connect() as conn:
        keys = set(conn.execute(sa.text("SELECT key FROM idempotency_keys WHERE ledger_id = :l"),
                                {"l": ledger.ledger_id}).scalars())  # fmt: skip
        left = set(conn.execute(sa.text("SELECT id FROM outbox_events WHERE ledger_id = :l"),
                                {"l": ledger.ledger_id}).scalars())  # fmt: skip
    assert old_key not in keys and fresh_key in keys
    assert published not in left and unpublished in left, "unpublished events are never pruned"
    replay = api.transfer(ledger, "cash", "equity", 6, key=fresh_key)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    # Past its window a key is forgotten: the same request is a new entry. Hence the minimum.
    assert api.transfer(ledger, "cash", "equity", 5, key=old_key).status_code == 201


def test_retention_has_a_safe_minimum(settings):
    with pytest.raises(ConfigError, match=r"ARUS_IDEMPOTENCY_RETENTION_DAYS: .* or equal to 7"):
        load_settings({"ARUS_DATABASE_URL": "postgresql://u@h/d",
                       "ARUS_IDEMPOTENCY_RETENTION_DAYS": "3"})  # fmt: skip
    # The database enforces it too, whoever calls.
    with pytest.raises(ValidationError, match="at least 7"):
        with domain_errors(), get_engine(settings).begin() as conn:
            conn.execute(sa.text("SELECT arus_prune(NULL, 2)"))


def test_verify_reports_table_sizes(engine):
    sizes = verify_all(engine)["table_bytes"]
    assert {"entries", "postings", "idempotency_keys", "outbox_events"} <= set(sizes)
    assert all(isinstance(v, int) and v > 0 for v in sizes.values()), sizes
