"""arus_client.shadow: a consumer's changes mirrored into a real ledger (a real `arus serve` on the
test PostgreSQL), with the consumer's store on SQLite and on PostgreSQL.

Rules under test: money is an int of minor units or nothing is queued; the queue lives in the
consumer's transaction; an update reverses the previous version and posts the new one, a delete
only reverses; per source, versions apply in order and stale ones are skipped; retries, lost
responses, duplicates and out-of-order deliveries converge without a double post; the report
says zero_drift exactly when the ledger agrees with the consumer.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from arus.platform.db import sqlalchemy_url
from arus_client import shadow
from arus_client.client import ArusClient, Entry, NewPosting, RetryPolicy
from arus_client.shadow import ShadowConfig, ShadowTransaction

from tests.support.http_faults import DroppingProxy, FaultyTransport, no_sleep
from tests.support.ledgers import injected_drift

DAY = dt.date(2025, 3, 1)
FAST = RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02)
ONE_TRY = RetryPolicy(max_attempts=1)
LATER = dt.timedelta(hours=2)  # beyond any backoff the tests schedule


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'consumer.sqlite3'}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(owner_database_url: str, settings: Any) -> Iterator[sa.Engine]:
    """The consumer's own PostgreSQL database (not the ledger's), on the test server."""
    from arus.platform.db import get_engine

    name = f"consumer_{uuid.uuid4().hex[:10]}"
    admin = get_engine(settings, autocommit=True)  # CREATE DATABASE runs outside a transaction
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url, connect_args = sqlalchemy_url(
        sa.engine.make_url(owner_database_url).set(database=name)
        .render_as_string(hide_password=False)
    )  # fmt: skip
    consumer = sa.create_engine(url, connect_args=connect_args)
    yield consumer
    consumer.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def any_engine(request) -> sa.Engine:
    return request.getfixturevalue(f"{request.param}_engine")


class Household:
    """A minimal consumer: its own `bills` table, the shadow queue beside it."""

    bills_metadata = sa.MetaData()
    bills = sa.Table(
        "bills",
        bills_metadata,
        sa.Column("source_id", sa.String(100), primary_key=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.config = ShadowConfig(
            namespace=f"hh-{uuid.uuid4().hex[:8]}", backoff_base_s=1.0, backoff_max_s=60.0
        )
        self.bills_metadata.create_all(engine)
        shadow.create_tables(engine)

    def _write(self, conn: sa.Connection, txn: ShadowTransaction, *, deleted: bool) -> None:
        values = {"payload": txn.to_payload(), "version": txn.version, "deleted": deleted}
        if conn.execute(
            self.bills.update().where(self.bills.c.source_id == txn.source_id).values(**values)
        ).rowcount == 0:  # fmt: skip
            conn.execute(self.bills.insert().values(source_id=txn.source_id, **values))

    def create(self, txn: ShadowTransaction) -> None:
        with self.engine.begin() as conn:
            self._write(conn, txn, deleted=False)
            shadow.enqueue_create(conn, txn)

    def update(self, txn: ShadowTransaction) -> None:
        with self.engine.begin() as conn:
            self._write(conn, txn, deleted=False)
            shadow.enqueue_update(conn, txn)

    def delete(self, txn: ShadowTransaction, version: int) -> None:
        with self.engine.begin() as conn:
            self._write(conn, txn, deleted=True)
            shadow.enqueue_delete(conn, source_id=txn.source_id, version=version)

    def live(self) -> list[ShadowTransaction]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.bills).where(self.bills.c.deleted.is_(False)))
            return [ShadowTransaction.from_payload(r.source_id, r.version, r.payload) for r in rows]

    def expected(self) -> dict[str, int]:
        return shadow.expected_balances(self.config, self.live())

    def drain(self, client: Any, *, at: dt.datetime | None = None) -> shadow.DrainResult:
        when = at or shadow.utcnow()
        return shadow.drain(self.engine, client, self.config, now=lambda: when, rng=lambda: 0.5)

    def report(self, client: ArusClient) -> dict[str, Any]:
        return shadow.consistency_report(
            client, self.config, self.expected(), queue=shadow.queue_status(self.engine)
        )

    def outbox(self) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(shadow.shadow_outbox).order_by(shadow.shadow_outbox.c.id)
            ).all()


def expense(source_id: str, version: int, amount: int, category: str = "food") -> ShadowTransaction:
    return ShadowTransaction(source_id, version, "expense", amount, DAY, category)


def income(source_id: str, version: int, amount: int) -> ShadowTransaction:
    return ShadowTransaction(source_id, version, "income", amount, DAY, "salary")


@pytest.fixture
def arus(server, ledger) -> Iterator[ArusClient]:
    with ArusClient(server, ledger.write_key, retry=FAST, sleep=no_sleep) as client:
        yield client


def entries(arus: ArusClient) -> list[Entry]:
    return sorted(arus.iter_entries(), key=lambda e: e.ledger_seq)


def live_entries(arus: ArusClient) -> list[Entry]:
    """Entries neither reversed nor reversals: what the ledger's balances are made of."""
    return [e for e in entries(arus) if e.reverses is None and e.reversed_by is None]


# --- the boundary ---------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [19.99, 1999.0, decimal.Decimal("19.99"), "1999", True, 0, -5])
def test_float_or_non_int_money_is_refused_before_anything_is_queued(sqlite_engine, amount):
    household = Household(sqlite_engine)
    with pytest.raises(shadow.ShadowInputError) as refused:
        household.create(ShadowTransaction("t1", 1, "expense", amount, DAY))
    if not isinstance(amount, int) or isinstance(amount, bool):
        assert isinstance(refused.value, TypeError) and "int of minor units" in str(refused.value)
    assert household.outbox() == [] and household.live() == []


def test_enqueue_is_part_of_the_consumer_transaction(sqlite_engine):
    household = Household(sqlite_engine)
    with pytest.raises(RuntimeError, match="consumer rolls back"):
        with sqlite_engine.begin() as conn:
            shadow.enqueue_create(conn, expense("t1", 1, 500))
            raise RuntimeError("consumer rolls back")
    assert household.outbox() == []
    household.create(expense("t1", 1, 500))  # no ledger anywhere: enqueueing never waits on it
    assert [row.status for row in household.outbox()] == ["pending"]


# --- create, update, delete -----------------------------------------------------------------


def test_create_update_income_delete_drain_to_zero_drift(any_engine, arus):
    household = Household(any_engine)
    household.create(expense("t1", 1, 4_250, "groceries"))
    household.update(expense("t1", 2, 3_899, "groceries"))
    household.create(income("t2", 1, 250_000))
    household.delete(expense("t1", 2, 3_899, "groceries"), version=3)

    result = household.drain(arus)
    assert (result.queued, result.drained, result.applied) == (4, 4, 4), result.to_json()
    report = household.report(arus)
    assert report["status"] == "zero_drift", report
    assert report["differences"] == [] and report["queue"]["done"] == 4
    ns = household.config.namespace
    assert {a["account_code"]: a["ledger"] for a in report["accounts"]} == {
        f"{ns}:cash": 250_000,
        f"{ns}:expenses:groceries": 0,
        f"{ns}:income": 250_000,
    }
    # v1 posted then reversed by the update; v2 posted then reversed by the delete; income.
    described = [(e.metadata.get("source_id"), e.metadata.get("version"), e.reverses is not None)
                 for e in entries(arus)]  # fmt: skip
    assert described == [
        ("t1", 1, False), (None, None, True), ("t1", 2, False), (None, None, True),
        ("t2", 1, False),
    ]  # fmt: skip
    assert [e.metadata["source_id"] for e in live_entries(arus)] == ["t2"]
    assert household.drain(arus).queued == 0


def test_update_reverses_the_previous_entry_then_posts_the_new_version(sqlite_engine, arus):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 1_000))
    household.drain(arus)
    household.update(expense("t1", 2, 1_500, "rent"))
    household.drain(arus)
    first, reversal, second = entries(arus)
    assert reversal.reverses == first.id and first.reversed_by == reversal.id
    assert second.metadata["version"] == 2 and second.reversed_by is None
    assert {p.account_code for p in second.postings} == {
        household.config.cash_code,
        household.config.expense_code("rent"),
    }
    assert household.report(arus)["status"] == "zero_drift"
    with sqlite_engine.connect() as conn:
        state = conn.execute(sa.select(shadow.shadow_state)).one()
    assert (state.applied_version, state.live_version, state.deleted) == (2, 2, False)


# --- duplicates and out-of-order deliveries -------------------------------------------------


def test_duplicate_deliveries_of_a_version_post_it_once(sqlite_engine, arus):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 700))
    household.update(expense("t1", 2, 900))
    household.update(expense("t1", 2, 900))  # the consumer delivered v2 twice
    result = household.drain(arus)
    assert (result.applied, result.skipped) == (2, 1), result.to_json()
    household.update(expense("t1", 2, 900))  # ...and once more, after it drained
    assert household.drain(arus).skipped == 1
    posts = [e for e in entries(arus) if e.metadata.get("version") == 2]
    assert len(posts) == 1, posts
    assert household.report(arus)["status"] == "zero_drift"
    assert [row.status for row in household.outbox()] == ["done", "done", "skipped", "skipped"]


def test_versions_apply_in_order_whatever_the_queue_order(sqlite_engine, arus):
    household = Household(sqlite_engine)
    txn = expense("t1", 1, 100)
    # Enqueued backwards: the delete first, the create last.
    with sqlite_engine.begin() as conn:
        shadow.enqueue_delete(conn, source_id="t1", version=3)
        shadow.enqueue_update(conn, expense("t1", 2, 200))
        shadow.enqueue_create(conn, txn)
    household.create(income("t2", 1, 1_000))
    household.delete(expense("t1", 2, 200), version=3)  # the consumer's own view: deleted
    result = household.drain(arus)
    assert result.applied == 4 and result.skipped == 1, result.to_json()  # 2nd delete is stale
    described = [(e.metadata.get("source_id"), e.metadata.get("version"), e.reverses is not None)
                 for e in entries(arus)]  # fmt: skip
    assert described == [
        ("t1", 1, False), (None, None, True), ("t1", 2, False), (None, None, True),
        ("t2", 1, False),
    ]  # fmt: skip
    assert household.report(arus)["status"] == "zero_drift"


def test_a_delete_queued_before_its_create_has_drained_ends_deleted(sqlite_engine, arus):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 300))
    household.delete(expense("t1", 1, 300), version=2)
    household.drain(arus)
    assert live_entries(arus) == [] and household.report(arus)["status"] == "zero_drift"


def test_stale_versions_arriving_late_are_skipped(sqlite_engine, arus):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 100))
    household.drain(arus)
    household.update(expense("t1", 3, 300))  # v2 has not arrived yet: v3 supersedes v1
    household.drain(arus)
    with sqlite_engine.begin() as conn:  # v2 finally arrives, and a replayed create
        shadow.enqueue_update(conn, expense("t1", 2, 200))
        shadow.enqueue_create(conn, expense("t1", 1, 100))
    result = household.drain(arus)
    assert (result.applied, result.skipped) == (0, 2), result.to_json()
    assert [e.metadata["version"] for e in live_entries(arus)] == [3]
    assert household.report(arus)["status"] == "zero_drift"
    stale = household.outbox()[-1]
    assert stale.status == "skipped" and "v3 already applied" in stale.last_error


# --- faults and retries ---------------------------------------------------------------------


def test_failed_drain_retries_with_backoff_and_never_double_posts(
    sqlite_engine, server, arus, ledger
):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 800))
    household.update(expense("t1", 2, 900))
    faulty = FaultyTransport()
    faulty.add("drop_response", times=1)  # the POST reaches the ledger; the answer is lost
    with ArusClient(
        server, ledger.write_key, transport=faulty, retry=ONE_TRY, sleep=no_sleep
    ) as flaky:
        started = shadow.utcnow()
        result = household.drain(flaky, at=started)
    assert (result.applied, result.retry_later, result.waiting) == (0, 1, 1), result.to_json()
    first, second = household.outbox()
    assert first.status == "pending" and first.attempts == 1 and "unreachable" in first.last_error
    assert started < first.next_attempt_at <= started + dt.timedelta(seconds=1)
    assert second.attempts == 0, "v2 must wait behind v1"
    assert len(entries(arus)) == 1, "the lost response still wrote v1 once"

    assert household.drain(arus, at=started).applied == 0, "not due yet: backoff holds it"
    result = household.drain(arus, at=started + LATER)
    assert result.applied == 2, result.to_json()
    assert [e.metadata.get("version") for e in entries(arus)] == [1, None, 2]
    assert household.report(arus)["status"] == "zero_drift"


def test_backoff_grows_per_attempt(sqlite_engine, server, ledger):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 100))
    faulty = FaultyTransport()
    faulty.add("503", times=100, path="/v1/")
    delays = []
    at = shadow.utcnow()
    with ArusClient(
        server, ledger.write_key, transport=faulty, retry=ONE_TRY, sleep=no_sleep
    ) as down:
        for _ in range(4):
            household.drain(down, at=at)
            (row,) = household.outbox()
            delays.append((row.next_attempt_at - at).total_seconds())
            at = row.next_attempt_at
    # equal jitter at rng 0.5: 3/4 of base * 2^(n-1) seconds, base 1 s
    assert delays == [0.75, 1.5, 3.0, 6.0], delays
    assert household.outbox()[0].attempts == 4 and household.outbox()[0].status == "pending"


class SimulatedCrash(Exception):
    pass


class CrashAfterPost:
    """The drainer dies after the ledger accepted a post and before it recorded it locally."""

    def __init__(self, real: ArusClient) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def post_entry(self, *args: Any, **kwargs: Any) -> Entry:
        self.real.post_entry(*args, **kwargs)
        raise SimulatedCrash


def test_crash_between_ledger_and_local_commit_replays_on_the_next_drain(sqlite_engine, arus):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 450))
    with pytest.raises(SimulatedCrash):
        household.drain(CrashAfterPost(arus))
    assert [row.status for row in household.outbox()] == ["pending"]
    assert len(entries(arus)) == 1
    household.drain(arus)
    assert len(entries(arus)) == 1, "the retry replayed the entry the crashed run wrote"
    (row,) = household.outbox()
    assert row.status == "done" and row.entry_id == entries(arus)[0].id
    assert household.report(arus)["status"] == "zero_drift"


def test_every_lost_response_at_a_real_proxy_still_converges(sqlite_engine, server, ledger):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 4_250, "groceries"))
    household.update(expense("t1", 2, 3_899, "groceries"))
    household.create(income("t2", 1, 250_000))
    household.delete(expense("t1", 2, 3_899, "groceries"), version=3)
    with DroppingProxy(server, path_prefix="/v1/") as proxy:
        with ArusClient(proxy.url, ledger.write_key, retry=FAST, sleep=no_sleep) as arus:
            result = household.drain(arus)
            assert result.drained == 4, result.to_json()
    # 3 accounts + 3 posts + 2 reversals: each POST's first response was dropped.
    assert proxy.dropped == 8, proxy.dropped
    with ArusClient(server, ledger.read_key) as reader:
        assert len(entries(reader)) == 5
        assert household.report(reader)["status"] == "zero_drift"


def test_a_permanent_error_is_dead_and_the_next_version_supersedes_it(sqlite_engine, arus, ledger):
    household = Household(sqlite_engine)
    arus.create_account(code="other:a", name="A", type="asset", currency="USD")
    arus.create_account(code="other:b", name="B", type="equity", currency="USD",
                        allow_negative=True)  # fmt: skip
    # Someone used the shadow's key for another request: the ledger answers 409 conflict.
    arus.post_entry(
        [NewPosting("other:a", "debit", 1), NewPosting("other:b", "credit", 1)],
        idempotency_key=household.config.post_key("t1", 1),
    )
    household.create(expense("t1", 1, 100))
    result = household.drain(arus)
    assert result.dead == 1 and "idempotency_conflict" in result.errors[0]
    report = household.report(arus)
    assert report["status"] == "drift" and report["queue"]["dead"] == 1 and "note" in report

    household.update(expense("t1", 2, 150))
    assert household.drain(arus).applied == 1
    assert household.report(arus)["status"] == "zero_drift"
    assert shadow.requeue_dead(sqlite_engine) == 1
    assert household.drain(arus).skipped == 1  # v1 is stale now
    assert shadow.queue_status(sqlite_engine) == {
        "pending": 0, "done": 1, "skipped": 1, "dead": 0,
    }  # fmt: skip


def test_a_read_key_stops_the_run_and_leaves_the_queue_untouched(sqlite_engine, server, ledger):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 100))
    with ArusClient(server, ledger.read_key, retry=FAST, sleep=no_sleep) as reader:
        with pytest.raises(shadow.ShadowConfigError, match="refused the API key"):
            household.drain(reader)
    (row,) = household.outbox()
    assert (row.status, row.attempts) == ("pending", 0)


def test_existing_chart_accounts_are_adopted_or_refused(sqlite_engine, arus):
    household = Household(sqlite_engine)
    config = household.config
    arus.create_account(code=config.cash_code, name="Cash", type="asset", currency="USD",
                        allow_negative=True)  # fmt: skip
    arus.create_account(code=config.expense_code("food"), name="Food", type="revenue",
                        currency="USD")  # fmt: skip
    household.create(income("t1", 1, 500))
    assert household.drain(arus).applied == 1  # cash adopted
    household.create(expense("t2", 1, 100))
    with pytest.raises(shadow.ShadowConfigError, match="as a revenue account"):
        household.drain(arus)


# --- drift ----------------------------------------------------------------------------------


def test_drift_is_reported_when_the_ledger_has_an_entry_the_consumer_does_not(sqlite_engine, arus):
    household = Household(sqlite_engine)
    household.create(income("t1", 1, 10_000))
    household.drain(arus)
    config = household.config
    arus.post_entry(
        [NewPosting(config.cash_code, "debit", 123), NewPosting(config.income_code, "credit", 123)]
    )
    report = household.report(arus)
    assert report["status"] == "drift"
    assert {(d["account_code"], d["expected"], d["ledger"]) for d in report["differences"]} == {
        (config.cash_code, 10_000, 10_123),
        (config.income_code, 10_000, 10_123),
    }


def test_drift_is_reported_when_the_consumer_changes_behind_the_queue_and_repaired(
    sqlite_engine, arus
):
    household = Household(sqlite_engine)
    household.create(expense("t1", 1, 2_000))
    household.drain(arus)
    with sqlite_engine.begin() as conn:  # a bug in the consumer: no shadow write
        conn.execute(Household.bills.update().values(payload=expense("t1", 1, 2_500).to_payload()))
    report = household.report(arus)
    assert report["status"] == "drift"
    cash = next(d for d in report["differences"] if d["account_code"] == household.config.cash_code)
    assert (cash["expected"], cash["ledger"], cash["ledger_minus_expected"]) == (
        -2_500,
        -2_000,
        500,
    )
    # Repair: the consumer re-saves the transaction as a new version.
    household.update(expense("t1", 2, 2_500))
    household.drain(arus)
    assert household.report(arus)["status"] == "zero_drift"


def test_ledger_side_drift_is_reported_too(sqlite_engine, arus, engine, ledger):
    household = Household(sqlite_engine)
    household.create(income("t1", 1, 900))
    household.drain(arus)
    account_sql = "(SELECT id FROM accounts WHERE ledger_id = :ledger AND code = :code)"
    params = {"ledger": ledger.ledger_id, "code": household.config.cash_code}
    with injected_drift(engine, account_sql, 7, params):
        report = household.report(arus)
    reasons = {(d["reason"], d["account_code"]) for d in report["differences"]}
    assert report["status"] == "drift"
    assert reasons == {("balance", household.config.cash_code),
                       ("ledger_drift", household.config.cash_code)}  # fmt: skip
    assert household.report(arus)["status"] == "zero_drift"


def test_versions_dated_into_a_closed_day_are_posted_into_the_first_open_day(
    sqlite_engine, arus, ledger, engine
):
    from arus.jobs import close

    from tests.support.ledgers import backdate_ledger

    today = dt.datetime.now(dt.UTC).date()
    closed_day, open_day = today - dt.timedelta(days=3), today - dt.timedelta(days=2)
    backdate_ledger(engine, ledger.ledger_id, days=5)
    household = Household(sqlite_engine)
    household.create(ShadowTransaction("t1", 1, "expense", 500, open_day, "food"))
    assert household.drain(arus).applied == 1
    for day in (closed_day, open_day):  # the ledger's books are closed through open_day now
        assert close.close_ledger(engine, ledger.ledger_id, day)["ok"]
    first_open = open_day + dt.timedelta(days=1)

    household.update(ShadowTransaction("t1", 2, "expense", 700, closed_day, "food"))
    result = household.drain(arus)
    assert (result.applied, result.dead) == (1, 0), result.to_json()
    posted, reversal, moved = entries(arus)
    assert reversal.reverses == posted.id and reversal.effective_date == first_open.isoformat()
    assert moved.effective_date == first_open.isoformat()
    assert moved.metadata["original_effective_date"] == closed_day.isoformat()
    assert moved.metadata["version"] == 2
    (row,) = [r for r in household.outbox() if r.version == 2]
    assert row.status == "done" and row.payload["posted_on"] == first_open.isoformat()
    assert household.report(arus)["status"] == "zero_drift"


def test_a_version_moved_out_of_a_closed_day_replays_after_a_crash(
    sqlite_engine, arus, ledger, engine
):
    from arus.jobs import close

    from tests.support.ledgers import backdate_ledger

    today = dt.datetime.now(dt.UTC).date()
    closed_day = today - dt.timedelta(days=2)
    backdate_ledger(engine, ledger.ledger_id, days=3)
    assert close.close_ledger(engine, ledger.ledger_id, closed_day)["ok"]
    household = Household(sqlite_engine)
    household.create(ShadowTransaction("t1", 1, "expense", 450, closed_day, "food"))
    with pytest.raises(SimulatedCrash):
        household.drain(CrashAfterPost(arus))
    household.drain(arus)
    (entry,) = entries(arus)
    assert entry.effective_date == (closed_day + dt.timedelta(days=1)).isoformat()
    assert household.report(arus)["status"] == "zero_drift"
