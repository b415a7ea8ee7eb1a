"""Account versions (SPEC §3.5): `version` counts an account's posted postings, each posting
records the version it made, and a line's `expected_version` is optimistic concurrency."""

from __future__ import annotations

import uuid

import sqlalchemy as sa


def _line(account: str, direction: str, amount: int, expected: int | None = None) -> dict:
    line = {"account": account, "direction": direction, "amount": amount}
    return line if expected is None else {**line, "expected_version": expected}


def _post(api, ledger, *lines: dict, key: str | None = None, **extra):
    return api.post("/v1/entries", key=ledger.write_key, json={"postings": list(lines), **extra},
                    idempotency_key=key or uuid.uuid4().hex)  # fmt: skip


def _version(api, ledger, code: str) -> int:
    return int(api.get(f"/v1/accounts/{code}", key=ledger.read_key).get_json()["version"])


def _books(api, ledger) -> None:
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)


def test_versions_count_posted_postings_and_each_posting_records_its_version(api, ledger):
    _books(api, ledger)
    assert _version(api, ledger, "cash") == 0
    first = _post(api, ledger, _line("cash", "debit", 5), _line("equity", "credit", 5))
    assert [p["account_version"] for p in first.get_json()["postings"]] == [1, 1]
    # Two lines on one account in one entry: versions 2 and 3, in line order.
    twice = _post(api, ledger, _line("cash", "debit", 3), _line("cash", "debit", 4),
                  _line("equity", "credit", 7))  # fmt: skip
    assert [p["account_version"] for p in twice.get_json()["postings"]] == [2, 3, 2]
    assert _version(api, ledger, "cash") == 3 and _version(api, ledger, "equity") == 2
    held = _post(api, ledger, _line("cash", "debit", 1), _line("equity", "credit", 1),
                 status="pending")  # fmt: skip
    assert [p["account_version"] for p in held.get_json()["postings"]] == [None, None]
    assert _version(api, ledger, "cash") == 3, "a pending line applies no posting"
    listed = api.get("/v1/accounts/cash/postings", key=ledger.read_key).get_json()["data"]
    assert [p["account_version"] for p in listed] == [3, 2, 1]


def test_a_stale_expected_version_is_409_and_writes_nothing(api, ledger, engine):
    _books(api, ledger)
    assert (
        _post(api, ledger, _line("cash", "debit", 5), _line("equity", "credit", 5)).status_code
        == 201
    )
    key = uuid.uuid4().hex
    stale = _post(api, ledger, _line("cash", "debit", 9, expected=0), _line("equity", "credit", 9),
                  key=key)  # fmt: skip
    assert stale.status_code == 409, stale.get_json()
    assert stale.get_json()["error"]["code"] == "version_conflict"
    assert "version 1, not the expected 0" in stale.get_json()["error"]["message"]
    with engine.connect() as conn:
        entries = conn.execute(sa.text("SELECT count(*) FROM entries WHERE ledger_id = :l"),
                               {"l": ledger.ledger_id}).scalar_one()  # fmt: skip
    assert entries == 1 and _version(api, ledger, "cash") == 1
    # The key was not spent: the same key with the right version is written.
    fresh = _post(api, ledger, _line("cash", "debit", 9, expected=1),
                  _line("equity", "credit", 9, expected=1), key=key)  # fmt: skip
    assert fresh.status_code == 201, fresh.get_json()
    assert [p["account_version"] for p in fresh.get_json()["postings"]] == [2, 2]


def test_a_batch_judges_each_item_on_the_versions_the_items_before_it_made(api, ledger):
    _books(api, ledger)

    def item(expected: int) -> dict:
        return {"idempotency_key": uuid.uuid4().hex,
                "postings": [_line("cash", "debit", 1, expected=expected),
                             _line("equity", "credit", 1)]}  # fmt: skip

    answer = api.post("/v1/entries/batch", key=ledger.write_key,
                      json={"entries": [item(0), item(0), item(1)]})  # fmt: skip
    results = answer.get_json()["results"]
    assert [r["status"] for r in results] == [201, 409, 201], results
    assert results[1]["error"]["code"] == "version_conflict"
    atomic = api.post("/v1/entries/batch", key=ledger.write_key,
                      json={"atomic": True, "entries": [item(2), item(2)]})  # fmt: skip
    assert atomic.status_code == 409, atomic.get_json()
    assert atomic.get_json()["error"]["index"] == 1
    assert _version(api, ledger, "cash") == 2, "the atomic batch wrote nothing"


def test_verify_finds_a_version_that_is_not_its_postings_count(api, ledger, engine):
    from arus.jobs import verify

    _books(api, ledger)
    _post(api, ledger, _line("cash", "debit", 5), _line("equity", "credit", 5))
    with engine.connect() as conn, conn.begin() as tx:
        assert verify.verify_ledger(conn, ledger.ledger_id)["accounts_with_version_drift"] == 0
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.text("UPDATE balances SET posting_count = posting_count + 1 "
                             "WHERE ledger_id = :l"), {"l": ledger.ledger_id})  # fmt: skip
        report = verify.verify_ledger(conn, ledger.ledger_id)
        tx.rollback()
    assert report["accounts_with_version_drift"] == 2 and not report["ok"]
