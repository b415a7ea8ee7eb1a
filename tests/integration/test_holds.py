"""Pending (two-phase) entries over HTTP, every rule and code of SPEC §3.2.

The tests that watch a hold expire run on a PostgreSQL whose clock they move forward
(tests/support/faked_clock.py): the engine judges expiry on the database's clock, so the hold
expires at once instead of after a sleep, and a hold may live a minute without the test waiting
(a lifetime a loaded machine cannot outrun between making the hold and checking it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from arus.ledger import gateway
from arus.platform.config import Settings
from arus.platform.db import get_engine
from arus.web.app import create_app

from tests.support.faked_clock import FakedClockPostgres, faked_clock_postgres
from tests.support.ledgers import Api, Ledger, new_ledger

HOLD_LIFETIME_S = 60.0  # how far ahead a hold on the faked clock expires
PAST_EXPIRY_S = 0.05  # how far past its expires_at the clock is moved


def _hold(debit: str, credit: str, amount: int, **extra: object) -> dict[str, object]:
    return {
        "status": "pending",
        "postings": [
            {"account": debit, "direction": "debit", "amount": amount},
            {"account": credit, "direction": "credit", "amount": amount},
        ],
        **extra,
    }


def _instant(seconds_from_now: float, *, offset_s: float = 0.0) -> str:
    """An RFC 3339 instant that far ahead of a clock `offset_s` ahead of real time."""
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s + seconds_from_now)
    return at.isoformat().replace("+00:00", "Z")


def _fund_wallet(api: Api, ledger: Ledger) -> Ledger:
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "wallet", "liability")
    api.account(ledger, "merchant", "liability")
    assert api.transfer(ledger, "cash", "wallet", 1_000).status_code == 201
    return ledger


@pytest.fixture
def wallet(api, ledger):
    """A customer wallet (liability, no overdraft) funded with 1,000 from cash."""
    return _fund_wallet(api, ledger)


@dataclasses.dataclass(frozen=True)
class Clocked:
    """The functions, the owner's engine and settings, on the PostgreSQL with a faked clock."""

    server: FakedClockPostgres
    api: Api
    engine: sa.Engine

    @property
    def settings(self) -> Settings:
        return self.server.owner

    def hold_until(self) -> str:
        """An expires_at HOLD_LIFETIME_S ahead of the database's clock."""
        return _instant(HOLD_LIFETIME_S, offset_s=self.server.clock.offset_s)

    def pass_expiry(self, expires_at: str) -> None:
        """Move the database's clock PAST_EXPIRY_S past `expires_at` (no sleep)."""
        clock = self.server.clock
        now = time.time() + clock.offset_s
        clock.advance(dt.datetime.fromisoformat(expires_at).timestamp() - now + PAST_EXPIRY_S)


@pytest.fixture(scope="module")
def clocked() -> Iterator[Clocked]:
    with faked_clock_postgres() as server:
        client = create_app(server.app).test_client()  # both surfaces: mutations and reads
        try:
            yield Clocked(server, Api(client, client), get_engine(server.owner))
        finally:
            for settings in (server.owner, server.app):
                for autocommit in (False, True):
                    get_engine(settings, autocommit=autocommit).dispose()


@pytest.fixture
def clocked_wallet(clocked: Clocked) -> Ledger:
    """The wallet, funded with 1,000, in a ledger on the faked clock's PostgreSQL."""
    return _fund_wallet(clocked.api, new_ledger(clocked.settings))


def post(api, ledger, path, body=None, key=None):
    return api.post(path, key=ledger.write_key, json=body, idempotency_key=key or uuid.uuid4().hex)


def account(api, ledger, code):
    return api.get(f"/v1/accounts/{code}", key=ledger.read_key).get_json()


def entry(api, ledger, entry_id):
    return api.get(f"/v1/entries/{entry_id}", key=ledger.read_key).get_json()


def code_of(response) -> str:
    return response.get_json()["error"]["code"]


def test_a_hold_reserves_funds_without_moving_the_balance(api, wallet):
    held = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 300))
    assert held.status_code == 201, held.get_json()
    body = held.get_json()
    assert body["status"] == "pending" and body["expires_at"] is None
    assert [p["amount"] for p in body["postings"]] == [300, 300]
    funds = account(api, wallet, "wallet")
    assert (funds["balance"], funds["pending_debits"], funds["available_balance"]) == (
        1000,
        300,
        700,
    )
    merchant = account(api, wallet, "merchant")
    assert (merchant["balance"], merchant["pending_credits"], merchant["available_balance"]) == (
        0,
        300,
        0,
    )  # fmt: skip  (a hold raising an account adds nothing to what it may spend)
    assert entry(api, wallet, body["id"]) == body


def test_overdraft_is_judged_on_the_available_balance_for_pending_and_posted_alike(api, wallet):
    assert post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 800)).status_code == 201
    second_hold = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 201))
    assert second_hold.status_code == 422 and code_of(second_hold) == "insufficient_funds"
    spend = post(
        api, wallet, "/v1/entries", _hold("wallet", "merchant", 201) | {"status": "posted"}
    )
    assert spend.status_code == 422 and code_of(spend) == "insufficient_funds"
    assert "available balance" in spend.get_json()["error"]["message"]
    exact = post(
        api, wallet, "/v1/entries", _hold("wallet", "merchant", 200) | {"status": "posted"}
    )
    assert exact.status_code == 201
    assert account(api, wallet, "wallet")["available_balance"] == 0


def test_post_captures_the_hold_in_a_new_posted_entry(api, wallet):
    held = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 300)).get_json()
    posted = post(api, wallet, f"/v1/entries/{held['id']}/post", {"description": "captured"})
    assert posted.status_code == 201, posted.get_json()
    capture = posted.get_json()
    assert capture["status"] == "posted" and capture["posts"] == held["id"]
    assert capture["description"] == "captured" and capture["ledger_seq"] == held["ledger_seq"] + 1
    assert [(p["account_code"], p["direction"], p["amount"]) for p in capture["postings"]] == [
        (p["account_code"], p["direction"], p["amount"]) for p in held["postings"]
    ]
    assert posted.headers["Location"] == f"/v1/entries/{capture['id']}"
    original = entry(api, wallet, held["id"])
    assert original["status"] == "posted" and original["posted_by"] == capture["id"]
    funds = account(api, wallet, "wallet")
    assert (funds["balance"], funds["pending_debits"], funds["available_balance"]) == (700, 0, 700)
    assert account(api, wallet, "merchant")["balance"] == 300


def test_void_releases_the_hold(api, wallet):
    held = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 300)).get_json()
    voided = post(api, wallet, f"/v1/entries/{held['id']}/void")
    assert voided.status_code == 200, voided.get_json()
    assert voided.get_json() | {"status": None} == held | {"status": None}
    assert voided.get_json()["status"] == "voided"
    funds = account(api, wallet, "wallet")
    assert (funds["balance"], funds["pending_debits"], funds["available_balance"]) == (
        1000,
        0,
        1000,
    )


def test_post_and_void_replay_with_their_idempotency_key(api, wallet):
    held = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 100)).get_json()
    first = post(api, wallet, f"/v1/entries/{held['id']}/post", {}, key="capture-1")
    again = post(api, wallet, f"/v1/entries/{held['id']}/post", {}, key="capture-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    other = post(
        api, wallet, f"/v1/entries/{held['id']}/post", {"description": "x"}, key="capture-1"
    )
    assert other.status_code == 409 and code_of(other) == "idempotency_conflict"
    released = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 100)).get_json()
    void = post(api, wallet, f"/v1/entries/{released['id']}/void", key="release-1")
    void_again = post(api, wallet, f"/v1/entries/{released['id']}/void", key="release-1")
    assert (void.status_code, void_again.status_code) == (200, 200)
    assert void_again.headers["Idempotent-Replayed"] == "true"
    assert account(api, wallet, "merchant")["balance"] == 100


def test_post_or_void_of_an_entry_that_is_not_pending_is_entry_not_pending(api, wallet):
    held = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 100)).get_json()
    assert post(api, wallet, f"/v1/entries/{held['id']}/void").status_code == 200
    for action in ("post", "void"):
        again = post(api, wallet, f"/v1/entries/{held['id']}/{action}")
        assert again.status_code == 409 and code_of(again) == "entry_not_pending", action
        assert "voided" in again.get_json()["error"]["message"]
    plain = api.transfer(wallet, "wallet", "merchant", 10).get_json()
    refused = post(api, wallet, f"/v1/entries/{plain['id']}/post")
    assert refused.status_code == 409 and code_of(refused) == "entry_not_pending"


def test_reversal_applies_to_posted_entries_only(api, wallet):
    held = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 100)).get_json()
    refused = post(api, wallet, f"/v1/entries/{held['id']}/reverse")
    assert refused.status_code == 409 and code_of(refused) == "entry_not_posted"
    capture = post(api, wallet, f"/v1/entries/{held['id']}/post").get_json()
    assert post(api, wallet, f"/v1/entries/{capture['id']}/reverse").status_code == 201
    assert account(api, wallet, "wallet")["balance"] == 1000


def test_expiry_is_exact_at_the_instant_with_no_job_run(clocked, clocked_wallet):
    api, wallet, engine = clocked.api, clocked_wallet, clocked.engine
    body = _hold("wallet", "merchant", 900, expires_at=clocked.hold_until())
    held = post(api, wallet, "/v1/entries", body).get_json()
    assert held["status"] == "pending" and held["expires_at"].endswith("Z")
    assert account(api, wallet, "wallet")["available_balance"] == 100
    clocked.pass_expiry(held["expires_at"])
    assert entry(api, wallet, held["id"])["status"] == "expired"
    funds = account(api, wallet, "wallet")
    assert (funds["pending_debits"], funds["available_balance"]) == (0, 1000)
    for action in ("post", "void"):
        late = post(api, wallet, f"/v1/entries/{held['id']}/{action}")
        assert late.status_code == 409 and code_of(late) == "pending_expired", action
    # The funds are usable at once: all 1,000, although the sweep has not run.
    assert api.transfer(wallet, "wallet", "merchant", 1_000).status_code == 201
    with engine.connect() as conn:
        held_rows = conn.execute(sa.text("SELECT count(*) FROM holds WHERE entry_id = :e"),
                                 {"e": held["id"]}).scalar_one()  # fmt: skip
    assert held_rows == 2, "the hold is still stored: nothing had to run for it to stop counting"


def test_the_sweep_records_expiry_releases_the_holds_and_emits_entry_voided(
    clocked, clocked_wallet
):
    api, wallet, engine = clocked.api, clocked_wallet, clocked.engine
    body = _hold("wallet", "merchant", 400, expires_at=clocked.hold_until())
    held = post(api, wallet, "/v1/entries", body).get_json()
    clocked.pass_expiry(held["expires_at"])
    assert gateway.expire_holds(engine) >= 1
    assert gateway.expire_holds(engine) == 0, "a second sweep finds nothing left"
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM holds WHERE entry_id = :e"),
                            {"e": held["id"]}).scalar_one()  # fmt: skip
        events = conn.execute(
            sa.text("SELECT event_type, ledger_seq, envelope::jsonb -> 'data' ->> 'status' "
                    "FROM outbox_events WHERE ledger_id = :l ORDER BY id"),
            {"l": wallet.ledger_id},
        ).all()  # fmt: skip
    assert left == 0
    assert (events[-1][0], events[-1][1], events[-1][2]) == (
        "entry.voided",
        held["ledger_seq"],
        "expired",
    )
    assert ("entry.pending", held["ledger_seq"], "pending") in [tuple(e) for e in events]
    funds = account(api, wallet, "wallet")
    assert (funds["balance"], funds["pending_debits"], funds["available_balance"]) == (
        1000,
        0,
        1000,
    )
    assert entry(api, wallet, held["id"])["status"] == "expired"


def test_events_name_the_pending_the_posting_and_the_voided_entry(api, wallet, engine):
    captured = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 10)).get_json()
    capture = post(api, wallet, f"/v1/entries/{captured['id']}/post").get_json()
    released = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 10)).get_json()
    post(api, wallet, f"/v1/entries/{released['id']}/void")
    with engine.connect() as conn:
        events = conn.execute(
            sa.text("SELECT event_type, envelope::jsonb -> 'data' ->> 'id', "
                    "envelope::jsonb -> 'data' ->> 'status' FROM outbox_events "
                    "WHERE ledger_id = :l AND event_type LIKE 'entry.%' ORDER BY id"),
            {"l": wallet.ledger_id},
        ).all()  # fmt: skip
    assert [tuple(e) for e in events][-4:] == [
        ("entry.pending", captured["id"], "pending"),
        ("entry.committed", capture["id"], "posted"),
        ("entry.pending", released["id"], "pending"),
        ("entry.voided", released["id"], "voided"),
    ]


def test_trial_balance_and_drift_count_posted_postings_only(api, wallet):
    post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 500))
    trial = api.get("/v1/trial-balance", key=wallet.read_key).get_json()
    assert trial["balanced"] is True and trial["drift"] == []
    balances = {a["account_code"]: a["balance"] for a in trial["accounts"]}
    assert balances["wallet"] == 1000 and balances["merchant"] == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"status": "held"}, 'status must be "posted" or "pending"'),
        ({"status": "posted", "expires_at": "2030-01-01T00:00:00Z"}, "expires_at is for pending"),
        ({"expires_at": "2030-01-01"}, "RFC 3339"),
        ({"expires_at": "2030-01-01T00:00:00"}, "RFC 3339"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "in the future"),
        ({"expires_at": _instant(91 * 86400)}, "at most 90 days"),
        ({"expires_at": "2026-02-30T00:00:00Z"}, "not a real date-time"),
    ],
)
def test_bad_status_or_expiry_is_a_validation_error(api, wallet, extra, message):
    body = _hold("wallet", "merchant", 1)
    body.pop("status")
    response = post(api, wallet, "/v1/entries", {"status": "pending", **body, **extra})
    assert response.status_code == 422 and code_of(response) == "validation_error"
    assert message in response.get_json()["error"]["message"]


def test_post_and_void_need_a_key_a_write_key_and_a_pending_entry_of_this_ledger(
    api, wallet, other_ledger
):
    held = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 1)).get_json()
    no_key = api.post(f"/v1/entries/{held['id']}/post", key=wallet.write_key, json={})
    assert no_key.status_code == 422 and code_of(no_key) == "idempotency_key_required"
    read_only = api.post(f"/v1/entries/{held['id']}/void", key=wallet.read_key, json={},
                         idempotency_key="k")  # fmt: skip
    assert read_only.status_code == 403
    foreign = post(api, other_ledger, f"/v1/entries/{held['id']}/post")
    assert foreign.status_code == 404 and code_of(foreign) == "not_found"
    assert post(api, wallet, "/v1/entries/not-an-id/void").status_code == 404
    body = post(api, wallet, f"/v1/entries/{held['id']}/void", {"reason": "x"})
    assert body.status_code == 422 and "unknown field" in body.get_json()["error"]["message"]
    assert entry(api, wallet, held["id"])["status"] == "pending"


def test_batch_items_may_be_holds(api, wallet):
    response = api.post("/v1/entries/batch", key=wallet.write_key, json={"entries": [
        {**_hold("wallet", "merchant", 600), "idempotency_key": "h1"},
        {**_hold("wallet", "merchant", 600), "idempotency_key": "h2"},
        {**_hold("wallet", "merchant", 400), "idempotency_key": "h3", "status": "posted"},
    ]})  # fmt: skip
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 422, 201]
    assert results[0]["entry"]["status"] == "pending"
    assert results[1]["error"]["code"] == "insufficient_funds"
    funds = account(api, wallet, "wallet")
    assert (funds["balance"], funds["pending_debits"], funds["available_balance"]) == (600, 600, 0)


class _Recorder:
    name = "recording"

    def __init__(self) -> None:
        self.events: list[object] = []

    def publish(self, events: list[object]) -> None:
        self.events.extend(events)

    def close(self) -> None:
        pass


def test_the_relay_run_sweeps_expired_holds_and_publishes_their_entry_voided(
    clocked, clocked_wallet
):
    from arus.outbox.relay import run_once

    api, wallet, settings = clocked.api, clocked_wallet, clocked.settings
    body = _hold("wallet", "merchant", 250, expires_at=clocked.hold_until())
    held = post(api, wallet, "/v1/entries", body).get_json()
    clocked.pass_expiry(held["expires_at"])
    transport = _Recorder()
    outcome = None
    for _ in range(100):  # the outbox holds other tests' events too: drain it all
        outcome = run_once(settings, transport=transport)  # type: ignore[arg-type]
        if outcome.published == 0:
            break
    assert outcome is not None and outcome.error is None
    envelopes = [event.envelope for event in transport.events]  # type: ignore[attr-defined]
    voided = [e for e in envelopes
              if e["event_type"] == "entry.voided" and e["data"]["id"] == held["id"]]  # fmt: skip
    assert len(voided) == 1 and voided[0]["data"]["status"] == "expired"


def test_verify_proves_pending_totals_equal_their_holds(api, wallet, engine):
    from arus.jobs.verify import verify_ledger

    held = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 70)).get_json()
    with engine.connect() as conn:
        clean = verify_ledger(conn, wallet.ledger_id)
    assert clean["ok"] and clean["pending_drift"] == [] and clean["stray_holds"] == 0
    with engine.connect() as conn, conn.begin() as tx:  # broken on purpose, then rolled back
        wallet_id = held["postings"][0]["account_id"]
        conn.execute(sa.text("UPDATE balances SET pending_debits = pending_debits + 1 "
                             "WHERE account_id = :a"), {"a": wallet_id})  # fmt: skip
        conn.execute(sa.text("DELETE FROM holds WHERE entry_id = :e AND position = 2"),
                     {"e": held["id"]})  # fmt: skip
        broken = verify_ledger(conn, wallet.ledger_id)
        tx.rollback()
    assert not broken["ok"]
    assert [d["account_code"] for d in broken["pending_drift"]] == ["merchant", "wallet"]
    assert broken["stray_holds"] == 1


def test_a_retried_hold_replays_after_its_expiry(clocked, clocked_wallet):
    api, wallet = clocked.api, clocked_wallet
    body = _hold("wallet", "merchant", 5, expires_at=clocked.hold_until())
    first = post(api, wallet, "/v1/entries", body, key="hold-retry")
    clocked.pass_expiry(body["expires_at"])
    again = post(api, wallet, "/v1/entries", body, key="hold-retry")
    assert (first.status_code, again.status_code) == (201, 200), again.get_json()
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"


def test_a_locked_account_defers_only_its_own_expired_holds(api, wallet, other_ledger, engine):
    """The sweep spans every ledger: a transaction that keeps one account's balance row locked
    (any tenant's, however long) must not hold back the sweep of the others (it skips what it
    cannot lock and expires the rest; the skipped entry waits for a later sweep)."""
    api.account(other_ledger, "cash", allow_negative=True)
    api.account(other_ledger, "wallet", "liability")
    api.account(other_ledger, "merchant", "liability")
    assert api.transfer(other_ledger, "cash", "wallet", 1_000).status_code == 201
    stuck = post(api, wallet, "/v1/entries", _hold("wallet", "merchant", 100)).get_json()
    swept = post(api, other_ledger, "/v1/entries", _hold("wallet", "merchant", 100)).get_json()
    with engine.begin() as conn:  # as the owner: both holds expired a second ago
        conn.execute(
            sa.text(
                "UPDATE holds SET expires_at = now() - interval '1 second' "
                "WHERE entry_id IN (:a, :b)"
            ),
            {"a": stuck["id"], "b": swept["id"]},
        )
    blocker = engine.connect()
    try:
        blocker.begin()
        blocker.execute(sa.text("SELECT 1 FROM balances b JOIN accounts a ON a.id = b.account_id "
                                "WHERE a.ledger_id = :l AND a.code = 'merchant' FOR UPDATE"),
                        {"l": wallet.ledger_id})  # fmt: skip
        started = time.monotonic()
        assert gateway.expire_holds(engine) >= 1  # other tests' expired holds may be due too
        assert time.monotonic() - started < 2, "the sweep waited for the locked account"
        assert entry(api, other_ledger, swept["id"])["status"] == "expired"
        assert entry(api, wallet, stuck["id"])["status"] == "pending"
    finally:
        blocker.rollback()
        blocker.close()
    assert gateway.expire_holds(engine) >= 1, "the deferred entry is swept once the lock is gone"
    assert entry(api, wallet, stuck["id"])["status"] == "expired"
