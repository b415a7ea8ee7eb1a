"""Race storms: 32 concurrent writers against the real functions and the real PostgreSQL.

Each storm releases its workers together through a barrier so their transactions overlap, then
checks the books three ways: the API (trial balance, drift, entries), plain SQL written here
(sum of postings per account, ledger_seq), and `arus.jobs.verify`. Figures are in every assertion
message and in one `STORM ...` line per storm (shown with `pytest -s`).

A barrier alone leaves the interleaving to chance, so the idempotency and reversal storms also
run a "held" round: the test holds the row locks of the accounts involved while all 32 requests
arrive, waits until PostgreSQL reports 32 sessions waiting on locks, then lets go. Every request
is then provably in flight at the same instant, which makes the race deterministic.

Requests and their accounts are drawn from seeded generators, so every run sends the same
requests; only the interleaving differs, and every assertion holds for any interleaving.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from arus import errors
from arus.jobs.verify import verify_all
from arus.ledger import commands, gateway
from arus.web.app import ENTRIES_ROUTE, REVERSE_ROUTE, operation

from tests.support.ledgers import Api, Ledger
from tests.support.model import postings_balances
from tests.support.storm import WORKERS, Outcome, ThreadClient, http_outcome, storm

LOCK_WAIT_TIMEOUT_S = 60  # the bound on waiting for all workers to queue on held locks
LOCK_WAIT_POLL_S = 0.02
DEBIT_NORMAL = ("asset", "expense")


def lock_waiters(engine: sa.Engine) -> int:
    """Sessions of this database waiting for a lock right now."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


@dataclass
class HeldLocks:
    """Balance rows locked by the test; `release_when_queued` lets go once all have queued."""

    conn: sa.Connection
    queued: int = 0

    def release_when_queued(self, engine: sa.Engine, expected: int) -> None:
        deadline = time.monotonic() + LOCK_WAIT_TIMEOUT_S
        while self.queued < expected and time.monotonic() < deadline:
            time.sleep(LOCK_WAIT_POLL_S)
            self.queued = lock_waiters(engine)
        self.conn.rollback()


@contextmanager
def balance_rows_held(
    engine: sa.Engine, ledger_id: uuid.UUID, codes: list[str]
) -> Iterator[HeldLocks]:
    """Hold FOR UPDATE locks on these accounts' balance rows until released (or the block ends)."""
    with engine.connect() as conn:
        locked = conn.execute(
            sa.text(
                "SELECT b.account_id FROM balances b JOIN accounts a ON a.id = b.account_id "
                "WHERE a.ledger_id = :l AND a.code IN :codes ORDER BY b.account_id FOR UPDATE"
            ).bindparams(sa.bindparam("codes", expanding=True)),
            {"l": ledger_id, "codes": codes},
        ).all()
        assert len(locked) == len(codes), f"locked {len(locked)} of {codes}"
        held = HeldLocks(conn)
        try:
            yield held
        finally:
            conn.rollback()


def transfer_body(debit: str, credit: str, amount_minor: int) -> dict[str, Any]:
    return {
        "postings": [
            {"account": debit, "direction": "debit", "amount": amount_minor},
            {"account": credit, "direction": "credit", "amount": amount_minor},
        ]
    }


def post(client: Any, ledger: Ledger, body: dict[str, Any], key: str | None = None) -> Outcome:
    response = client.post(
        "/v1/entries", key=ledger.write_key, idempotency_key=key or uuid.uuid4().hex, json=body
    )
    return http_outcome(response)


def balance_of(api: Api, ledger: Ledger, code: str) -> int:
    response = api.get(f"/v1/accounts/{code}", key=ledger.read_key)
    assert response.status_code == 200, response.get_json()
    return int(response.get_json()["balance"])


def ledger_seqs(engine: sa.Engine, ledger_id: uuid.UUID) -> tuple[list[int], int]:
    """Every entry's ledger_seq in order, and the ledger's counter."""
    with engine.connect() as conn:
        seqs = conn.execute(
            sa.text("SELECT ledger_seq FROM entries WHERE ledger_id = :l ORDER BY ledger_seq"),
            {"l": ledger_id},
        ).scalars()
        seq_list = [int(seq) for seq in seqs]
        last = conn.execute(
            sa.text("SELECT last_ledger_seq FROM ledgers WHERE id = :l"), {"l": ledger_id}
        ).scalar_one()
    return seq_list, int(last)


ROUNDS = ("held", "barrier")  # how the workers are made to collide (see the module doc)


def run_round(
    api: Api,
    engine: sa.Engine,
    ledger: Ledger,
    mode: str,
    codes: list[str],
    job: Callable[[int, ThreadClient], list[Outcome]],
) -> tuple[list[Outcome], str]:
    """One storm round; in "held" mode the accounts' rows stay locked until all have queued."""
    if mode == "barrier":
        results, peak = storm(api, job)
        return results, f"mode=barrier peak_in_flight={peak}"
    with balance_rows_held(engine, ledger.ledger_id, codes) as held:
        results, peak = storm(
            api, job, while_running=lambda: held.release_when_queued(engine, WORKERS)
        )
    figures = f"mode=held peak_in_flight={peak} queued_on_locks={held.queued}"
    assert held.queued >= WORKERS, f"{figures}: not every worker reached the locks"
    return results, figures


def test_idempotency_storm_creates_exactly_one_entry(
    api: Api, ledger: Ledger, engine: sa.Engine
) -> None:
    """32 workers send one entry with one Idempotency-Key at once: one 201, 31 exact replays."""
    api.account(ledger, "cash", "asset")
    api.account(ledger, "capital", "equity")
    amount_minor = 500
    created_ids: list[str] = []
    tally: Counter[str] = Counter()
    rounds: list[str] = []
    for round_index, mode in enumerate(ROUNDS):
        key = f"storm-{round_index}-{uuid.uuid4().hex}"
        body = transfer_body("cash", "capital", amount_minor)
        results, how = run_round(
            api,
            engine,
            ledger,
            mode,
            ["cash", "capital"],
            lambda _i, client, body=body, key=key: [post(client, ledger, body, key)],
        )
        statuses = Counter((o.status, o.replayed) for o in results)
        figures = f"round={round_index} {how} workers={WORKERS} outcomes={dict(statuses)}"
        assert statuses == {(201, False): 1, (200, True): WORKERS - 1}, figures
        bodies = {repr(sorted(o.body.items())) for o in results}
        assert len(bodies) == 1, f"{figures} distinct bodies={len(bodies)}"
        created_ids.append(results[0].body["id"])
        tally.update("created" if o.status == 201 else "replayed" for o in results)
        with engine.connect() as conn:
            stored = conn.execute(
                sa.text(
                    "SELECT count(*) FROM entries WHERE ledger_id = :l AND idempotency_key = :k"
                ),
                {"l": ledger.ledger_id, "k": key},
            ).scalar_one()
        assert stored == 1, f"{figures} entries stored with this key={stored}"
        rounds.append(how)

    listed = api.get("/v1/entries", key=ledger.read_key).get_json()["data"]
    listed_ids = sorted(entry["id"] for entry in listed)
    assert listed_ids == sorted(created_ids), f"GET /v1/entries={listed_ids} created={created_ids}"
    cash, capital = balance_of(api, ledger, "cash"), balance_of(api, ledger, "capital")
    expected = len(ROUNDS) * amount_minor
    assert (cash, capital) == (expected, expected), (
        f"balances cash={cash} capital={capital}, expected {expected} each (moved once per key)"
    )
    seqs, last = ledger_seqs(engine, ledger.ledger_id)
    assert seqs == list(range(1, len(ROUNDS) + 1)) and last == len(ROUNDS), (
        f"ledger_seq={seqs} last={last}"
    )
    print(
        f"\nSTORM idempotency: workers={WORKERS} rounds={len(ROUNDS)} "
        f"requests={len(ROUNDS) * WORKERS} created={tally['created']} "
        f"replayed={tally['replayed']} entries={len(listed)} balance cash={cash} "
        f"capital={capital} rounds=[{'; '.join(rounds)}]"
    )


def test_overdraft_storm_never_goes_below_zero(api: Api, ledger: Ledger, engine: sa.Engine) -> None:
    """32 workers spend from one non-negative wallet: exactly floor(funding / amount) succeed."""
    funding_minor, spend_minor, attempts_per_worker = 1000, 7, 8
    api.account(ledger, "wallet", "asset", allow_negative=False)
    api.account(ledger, "capital", "equity")
    api.account(ledger, "spend", "expense")
    funded = api.transfer(ledger, "wallet", "capital", funding_minor)
    assert funded.status_code == 201, funded.get_json()

    def spend(_index: int, client: Any) -> list[Outcome]:
        body = transfer_body("spend", "wallet", spend_minor)
        return [post(client, ledger, body) for _ in range(attempts_per_worker)]

    results, peak = storm(api, spend)
    requests = WORKERS * attempts_per_worker
    expected_successes = min(requests, funding_minor // spend_minor)
    tally = Counter((o.status, o.label) for o in results)
    successes = tally[(201, "201")]
    refused = tally[(422, "insufficient_funds")]
    wallet, spent = balance_of(api, ledger, "wallet"), balance_of(api, ledger, "spend")
    figures = (
        f"workers={WORKERS} requests={requests} successes={successes} "
        f"expected={expected_successes} insufficient_funds={refused} outcomes={dict(tally)} "
        f"wallet={wallet} spend={spent}"
    )
    assert successes == expected_successes, figures
    assert refused == requests - expected_successes, figures
    assert wallet == funding_minor - successes * spend_minor, figures
    assert spent == successes * spend_minor, figures
    with engine.connect() as conn:
        lowest, count = conn.execute(
            sa.text(
                "SELECT min(p.balance_after), count(*) FROM postings p "
                "JOIN accounts a ON a.id = p.account_id "
                "WHERE a.ledger_id = :l AND a.code = 'wallet'"
            ),
            {"l": ledger.ledger_id},
        ).one()
    assert lowest >= 0, f"{figures} lowest balance_after={lowest}"
    assert count == 1 + successes, f"{figures} wallet postings={count}"
    seqs, last = ledger_seqs(engine, ledger.ledger_id)
    assert seqs == list(range(1, successes + 2)) and last == successes + 1, (
        f"{figures} ledger_seq={seqs[:3]}..{seqs[-3:]} count={len(seqs)} last={last}"
    )
    print(
        f"\nSTORM overdraft: workers={WORKERS} requests={requests} amount={spend_minor} "
        f"funding={funding_minor} successes={successes} insufficient_funds={refused} "
        f"final_balance={wallet} lowest_balance_after={lowest} peak_in_flight={peak}"
    )


def test_reversal_storm_reverses_once(api: Api, ledger: Ledger, engine: sa.Engine) -> None:
    """32 workers reverse one entry with 32 different keys: one reversal, 31 already_reversed.

    The accounts cannot go negative, so a second reversal that got as far as the balances would
    overdraw them: the answer must still be 409 already_reversed, never insufficient_funds.
    """
    api.account(ledger, "cash", "asset")
    api.account(ledger, "capital", "equity")
    amount_minor = 250
    rounds: list[str] = []
    for round_index, mode in enumerate(ROUNDS):
        original = api.transfer(ledger, "cash", "capital", amount_minor)
        assert original.status_code == 201, original.get_json()
        entry_id = original.get_json()["id"]

        def reverse(_index: int, client: ThreadClient, entry_id: str = entry_id) -> list[Outcome]:
            response = client.post(
                f"/v1/entries/{entry_id}/reverse",
                key=ledger.write_key,
                idempotency_key=uuid.uuid4().hex,
                json={},
            )
            return [http_outcome(response)]

        results, how = run_round(api, engine, ledger, mode, ["cash", "capital"], reverse)
        tally = Counter((o.status, o.label) for o in results)
        figures = f"round={round_index} {how} workers={WORKERS} outcomes={dict(tally)}"
        assert tally == {(201, "201"): 1, (409, "already_reversed"): WORKERS - 1}, figures
        winner = next(o.body for o in results if o.status == 201)
        assert winner["reverses"] == entry_id, figures
        shown = api.get(f"/v1/entries/{entry_id}", key=ledger.read_key).get_json()
        assert shown["reversed_by"] == winner["id"], f"{figures} reversed_by={shown['reversed_by']}"
        cash, capital = balance_of(api, ledger, "cash"), balance_of(api, ledger, "capital")
        assert (cash, capital) == (0, 0), f"{figures} cash={cash} capital={capital} (expected 0)"
        rounds.append(f"{how} reversed=1 already_reversed={tally[(409, 'already_reversed')]}")
    seqs, last = ledger_seqs(engine, ledger.ledger_id)
    expected_seqs = list(range(1, 2 * len(ROUNDS) + 1))
    assert seqs == expected_seqs and last == len(expected_seqs), f"ledger_seq={seqs} last={last}"
    print(
        f"\nSTORM reversal: workers={WORKERS} requests={len(ROUNDS) * WORKERS} "
        f"entries={len(seqs)} balances cash=0 capital=0 rounds=[{'; '.join(rounds)}]"
    )


# The cross-posting storm: 20 accounts in two currencies, every type, a third of them allowed
# to go negative, each funded first; then 32 workers post random pair and multi-posting entries
# (postings in random order, both directions, sometimes two currencies) and reverse random
# entries. Even workers go through the HTTP function, odd ones call arus.ledger.gateway directly.
CROSS_ACCOUNTS = 20
CROSS_REQUESTS_PER_WORKER = 8
CROSS_FUNDING_MINOR = 1_000
CROSS_MAX_AMOUNT_MINOR = 400
CROSS_SEED = 20240611
ACCOUNT_TYPES = ("asset", "expense", "liability", "equity", "revenue")


@dataclass(frozen=True)
class CrossAccount:
    code: str
    type: str
    currency: str
    allow_negative: bool


def cross_accounts() -> list[CrossAccount]:
    return [
        CrossAccount(
            code=f"acct-{index:02d}",
            type=ACCOUNT_TYPES[index % len(ACCOUNT_TYPES)],
            currency="EUR" if index % 4 == 0 else "USD",
            allow_negative=index % 3 == 0,
        )
        for index in range(CROSS_ACCOUNTS)
    ]


def split_amount(rng: random.Random, total_minor: int, parts: int) -> list[int]:
    cuts = sorted(rng.sample(range(1, total_minor), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total_minor], strict=True)]


def random_entry(rng: random.Random, pools: dict[str, list[str]]) -> dict[str, Any]:
    """A balanced entry: one or two currency groups of 2..5 postings, in shuffled order."""
    postings_json: list[dict[str, Any]] = []
    groups = 1 if rng.random() < 0.7 else 2
    for currency in rng.sample(sorted(pools), groups):
        total = rng.randint(3, CROSS_MAX_AMOUNT_MINOR)
        n_debit, n_credit = rng.choice([(1, 1), (1, 1), (1, 2), (2, 1), (2, 2), (3, 2)])
        for direction, count in (("debit", n_debit), ("credit", n_credit)):
            for amount in split_amount(rng, total, count):
                account = rng.choice(pools[currency])
                postings_json.append({"account": account, "direction": direction, "amount": amount})
    rng.shuffle(postings_json)
    return {"description": "storm", "postings": postings_json}


def direct_call(client: ThreadClient, call: Callable[[], gateway.MutationResult]) -> Outcome:
    """Call the posting engine directly; domain errors become the outcome, anything else raises."""
    try:
        with client.in_flight:
            result = call()
    except errors.ArusError as exc:
        return Outcome(status=exc.status, body=exc.to_json())
    return Outcome(status=result.status, body=result.body, replayed=result.replayed)


def test_cross_posting_storm_keeps_books_balanced(
    api: Api, ledger: Ledger, engine: sa.Engine, posting_engine: sa.Engine
) -> None:
    """Random multi-account entries and reversals from 32 workers: no deadlock, no 500, no drift."""
    accounts = cross_accounts()
    pools: dict[str, list[str]] = {}
    for account in accounts:
        api.account(ledger, account.code, account.type, account.currency, account.allow_negative)
        pools.setdefault(account.currency, []).append(account.code)
    for currency in pools:
        api.account(ledger, f"source-{currency}", "equity", currency, allow_negative=True)
    committed: list[dict[str, Any]] = []  # every 201 body, funding included
    for account in accounts:
        source = f"source-{account.currency}"
        debit, credit = (
            (account.code, source) if account.type in DEBIT_NORMAL else (source, account.code)
        )
        funded = api.transfer(ledger, debit, credit, CROSS_FUNDING_MINOR)
        assert funded.status_code == 201, funded.get_json()
        committed.append(funded.get_json())
    funding_entries = len(committed)

    shared_lock = threading.Lock()
    reversible: list[str] = []  # entry ids any worker may try to reverse

    def work(index: int, client: ThreadClient) -> list[Outcome]:
        rng = random.Random(CROSS_SEED + index)
        via_http = index % 2 == 0
        outcomes = []
        for _ in range(CROSS_REQUESTS_PER_WORKER):
            key = uuid.uuid4().hex
            with shared_lock:
                target = rng.choice(reversible) if reversible and rng.random() < 0.15 else None
            if target is not None:
                if via_http:
                    outcome = http_outcome(
                        client.post(
                            f"/v1/entries/{target}/reverse",
                            key=ledger.write_key,
                            idempotency_key=key,
                            json={},
                        )
                    )
                else:
                    outcome = direct_call(
                        client,
                        lambda target=target, key=key: gateway.reverse_entry(
                            posting_engine,
                            credentials=ledger.credentials,
                            reversal=commands.parse_reversal(uuid.UUID(target), {}),
                            idempotency_key=key,
                            request_body={},
                            operation=operation(REVERSE_ROUTE, entry_id=uuid.UUID(target)),
                        ),
                    )
            else:
                body = random_entry(rng, pools)
                if via_http:
                    outcome = post(client, ledger, body, key)
                else:
                    outcome = direct_call(
                        client,
                        lambda body=body, key=key: gateway.post_entry(
                            posting_engine,
                            credentials=ledger.credentials,
                            entry=commands.parse_new_entry(body),
                            idempotency_key=key,
                            request_body=body,
                            operation=operation(ENTRIES_ROUTE),
                        ),
                    )
            if outcome.status == 201:
                with shared_lock:
                    reversible.append(outcome.body["id"])
            outcomes.append(outcome)
        return outcomes

    results, peak = storm(api, work)
    requests = len(results)
    tally = Counter(o.label for o in results)
    committed.extend(o.body for o in results if o.status == 201)
    reversals = sum(1 for o in results if o.status == 201 and o.body["reverses"] is not None)
    allowed = {"201", "insufficient_funds", "already_reversed"}
    assert set(tally) <= allowed, f"workers={WORKERS} requests={requests} outcomes={dict(tally)}"
    assert tally["201"] >= 1, f"workers={WORKERS} requests={requests} outcomes={dict(tally)}"

    trial = api.get("/v1/trial-balance", key=ledger.read_key).get_json()
    figures = (
        f"workers={WORKERS} requests={requests} outcomes={dict(tally)} "
        f"totals={trial['totals']} balanced={trial['balanced']} drift={trial['drift']}"
    )
    assert trial["balanced"] is True, figures
    assert trial["drift"] == [], figures

    # Independently: the balance every committed entry implies, replayed in Python.
    types = {a.code: a.type for a in accounts} | {f"source-{c}": "equity" for c in pools}
    expected: Counter[str] = Counter({code: 0 for code in types})
    for entry in committed:
        for line in entry["postings"]:
            normal = "debit" if types[line["account_code"]] in DEBIT_NORMAL else "credit"
            sign = 1 if line["direction"] == normal else -1
            expected[line["account_code"]] += sign * line["amount"]
    in_sql = postings_balances(engine, ledger.ledger_id)
    mismatched = {
        code: (materialized, from_postings, expected[code])
        for code, (materialized, from_postings) in in_sql.items()
        if not materialized == from_postings == expected[code]
    }
    assert set(in_sql) == set(types), f"{figures} accounts={sorted(in_sql)}"
    assert mismatched == {}, f"{figures} (materialized, sum of postings, expected)={mismatched}"
    overdrawn = {
        a.code: in_sql[a.code][0]
        for a in accounts
        if not a.allow_negative and in_sql[a.code][0] < 0
    }
    assert overdrawn == {}, f"{figures} non-negative accounts below zero={overdrawn}"

    entries_total = funding_entries + tally["201"]
    seqs, last = ledger_seqs(engine, ledger.ledger_id)
    assert seqs == list(range(1, entries_total + 1)) and last == entries_total, (
        f"{figures} entries={len(seqs)} expected={entries_total} last_ledger_seq={last}"
    )
    report = verify_all(engine)
    ours = [r for r in report["ledgers"] if r["ledger_id"] == str(ledger.ledger_id)]
    assert ours and ours[0]["ok"], f"{figures} verify={ours}"
    failing = [r for r in report["ledgers"] if not r["ok"]]
    assert report["ok"], f"{figures} verify_all failing ledgers={failing}"
    print(
        f"\nSTORM cross-posting: workers={WORKERS} accounts={len(types)} requests={requests} "
        f"created={tally['201'] - reversals} reversals={reversals} "
        f"insufficient_funds={tally['insufficient_funds']} "
        f"already_reversed={tally['already_reversed']} entries={len(seqs)} "
        f"ledger_seq=1..{last} balanced={trial['balanced']} drift={len(trial['drift'])} "
        f"totals={[(t['currency'], t['debit'], t['credit']) for t in trial['totals']]} "
        f"verify_all_ok={report['ok']} ledgers_verified={len(report['ledgers'])} "
        f"peak_in_flight={peak}"
    )
