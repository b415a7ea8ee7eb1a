"""The journal is append-only in the database itself: no UPDATE, DELETE or TRUNCATE."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


@pytest.fixture
def posted(api, ledger):
    api.account(ledger, "cash")
    api.account(ledger, "equity", "equity", allow_negative=True)
    return api.transfer(ledger, "cash", "equity", 100).get_json()


STATEMENTS = [
    "UPDATE entries SET description = 'edited' WHERE id = :entry",
    "UPDATE entries SET ledger_seq = ledger_seq + 1000 WHERE id = :entry",
    "DELETE FROM entries WHERE id = :entry",
    "UPDATE postings SET amount = amount + 1 WHERE entry_id = :entry",
    "DELETE FROM postings WHERE entry_id = :entry",
    "TRUNCATE postings",
    "TRUNCATE entries CASCADE",
]


@pytest.mark.parametrize("statement", STATEMENTS)
def test_journal_rejects_changes(engine, posted, statement):
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.begin() as conn:
        conn.execute(sa.text(statement), {"entry": posted["id"]})
    assert "append-only" in str(raised.value)


def test_journal_unchanged_after_rejected_changes(api, ledger, engine, posted):
    for statement in STATEMENTS:
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
            conn.execute(sa.text(statement), {"entry": posted["id"]})
    assert api.get(f"/v1/entries/{posted['id']}", key=ledger.read_key).get_json() == posted


def test_no_session_setting_disables_the_triggers(engine, posted):
    # Common back doors: replica mode skips ordinary triggers; the guard must not rely on a
    # flag the application could set. (A superuser can still ALTER TABLE ... DISABLE TRIGGER:
    # production runs the app as a non-owner role, see docs/threat-model.md.)
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL arus.allow_mutation = 'on'")
        conn.execute(sa.text("DELETE FROM postings WHERE entry_id = :e"), {"e": posted["id"]})


def test_unbalanced_postings_cannot_be_committed_behind_the_engine(engine, ledger, posted):
    """The deferred constraint trigger refuses an entry whose postings do not balance."""
    account = posted["postings"][0]["account_id"]
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.begin() as conn:
        entry_id = conn.execute(
            sa.text(
                "INSERT INTO entries (ledger_id, ledger_seq, effective_date, idempotency_key) "
                "VALUES (:ledger, 999999, current_date, 'manual') RETURNING id"
            ),
            {"ledger": ledger.ledger_id},
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO postings (entry_id, ledger_id, account_id, position, direction, "
                "amount, currency, balance_after, account_version, created_at) "
                "VALUES (:entry, :ledger, :account, 1, 'debit', 5, 'USD', 0, 1, now()), "
                "(:entry, :ledger, :account, 2, 'credit', 4, 'USD', 0, 2, now())"
            ),
            {"entry": entry_id, "ledger": ledger.ledger_id, "account": account},
        )
    assert "does not balance" in str(raised.value)


def test_negative_balance_cannot_be_written_behind_the_engine(engine, posted):
    cash = posted["postings"][0]["account_id"]
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE balances SET balance = -1 WHERE account_id = :id"), {"id": cash}
        )
    assert "balances_non_negative" in str(raised.value)
