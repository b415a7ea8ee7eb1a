"""arus_client.client against a real `arus serve` on the test PostgreSQL, plus injected faults.

The server is a subprocess (`python -m arus.tools.cli serve`) on a free 127.0.0.1 port, stopped by
its PID. Faults are injected two ways: an httpx transport that wraps the real one (drop the
response after the server handled the request, refuse the connection, time out, answer 503),
and a real TCP proxy that forwards a request, lets the server commit it, then closes the
client's socket without a byte of the response.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable

import httpx
import pytest
from arus_client import client as arus_client
from arus_client.client import (
    Account,
    AlreadyReversedError,
    ArusApiError,
    ArusClient,
    ArusConnectionError,
    CurrencyMismatchError,
    DuplicateAccountCodeError,
    Entry,
    ForbiddenError,
    IdempotencyConflictError,
    InsufficientFundsError,
    NewPosting,
    NotFoundError,
    RetryPolicy,
    ServerError,
    UnauthenticatedError,
    UnbalancedEntryError,
    ValidationError,
)

from tests.support.http_faults import DroppingProxy, FaultyTransport, no_sleep
from tests.support.ledgers import REPO, new_ledger

NO_SLEEP_RETRY = RetryPolicy(max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def books(server, settings):
    """A fresh ledger with cash (asset, may not overdraw) and equity (may go negative)."""
    ledger = new_ledger(settings, "client")
    with ArusClient(server, ledger.write_key, retry=NO_SLEEP_RETRY, sleep=no_sleep) as arus:
        arus.create_account(code="cash", name="Cash", type="asset", currency="USD")
        arus.create_account(
            code="equity", name="Equity", type="equity", currency="USD", allow_negative=True
        )
    return ledger


def transfer(amount: int, debit: str = "cash", credit: str = "equity") -> list[NewPosting]:
    return [NewPosting(debit, "debit", amount), NewPosting(credit, "credit", amount)]


# --- typed round trips on the real server ---------------------------------------------------


def test_accounts_round_trip_as_typed_objects(server, books):
    with ArusClient(server, books.write_key) as arus:
        created = arus.create_account(
            code="bank:main", name="Main", type="asset", currency="EUR", metadata={"n": 1}
        )
        assert isinstance(created, Account) and created.replayed is False
        assert (created.code, created.currency, created.balance) == ("bank:main", "EUR", 0)
        assert arus.get_account("bank:main") == created
        assert arus.get_account(created.id) == created


def test_iterators_follow_next_cursor_to_the_end(server, books):
    with ArusClient(server, books.write_key) as arus:
        for index in range(5):
            arus.create_account(code=f"a{index}", name="A", type="asset", currency="USD")
        first = arus.list_accounts(limit=2)
        assert len(first.data) == 2 and first.next_cursor is not None
        codes = [a.code for a in arus.iter_accounts(page_size=2)]
        assert codes == ["a0", "a1", "a2", "a3", "a4", "cash", "equity"]

        posted = [arus.post_entry(transfer(100 + i)) for i in range(5)]
        entries = list(arus.iter_entries(page_size=2))
        assert [e.id for e in entries] == [e.id for e in reversed(posted)]  # newest first
        postings = list(arus.iter_postings("cash", page_size=2))
        assert [p.amount for p in postings] == [104, 103, 102, 101, 100]
        assert [p.balance_after for p in postings] == [510, 406, 303, 201, 100]


def test_post_entry_replay_returns_the_same_entry(server, books):
    with ArusClient(server, books.write_key) as arus:
        first = arus.post_entry(transfer(700), idempotency_key="order-1", description="o1")
        again = arus.post_entry(transfer(700), idempotency_key="order-1", description="o1")
        assert isinstance(first, Entry) and first.replayed is False and again.replayed is True
        assert again == first
        assert arus.get_account("cash").balance == 700
        with pytest.raises(IdempotencyConflictError) as conflict:
            arus.post_entry(transfer(701), idempotency_key="order-1", description="o1")
        assert conflict.value.status == 409 and conflict.value.code == "idempotency_conflict"
        assert conflict.value.idempotency_key == "order-1"


def test_holds_capture_release_filters_and_balance_at_as_typed_objects(server, books):
    from arus_client.client import EntryNotPendingError, EntryNotPostedError

    with ArusClient(server, books.write_key) as arus:
        funding = arus.post_entry(transfer(1_000, "cash", "equity"), metadata={"kind": "funding"})
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        hold = arus.post_entry(transfer(300, "equity", "cash"), pending=True, expires_at=expires)
        assert hold.status == "pending" and hold.expires_at is not None
        cash = arus.get_account("cash")
        assert (cash.balance, cash.pending_credits, cash.available_balance) == (1_000, 300, 700)
        capture = arus.post_pending(hold.id, description="captured")
        assert capture.posts == hold.id and arus.get_entry(hold.id).posted_by == capture.id
        with pytest.raises(EntryNotPendingError):
            arus.void_pending(hold.id)
        release = arus.post_entry(transfer(50, "equity", "cash"), pending=True)
        assert arus.void_pending(release.id).status == "voided"
        with pytest.raises(EntryNotPostedError):
            arus.reverse_entry(release.id)
        assert [e.id for e in arus.list_entries(status="voided").data] == [release.id]
        assert [e.id for e in arus.list_entries(metadata={"kind": "funding"}).data] == [funding.id]
        assert [a.code for a in arus.list_accounts(type="equity").data] == ["equity"]
        assert arus.balance_at("cash", funding.created_at) == 1_000
        assert arus.balance_at("cash", capture.created_at) == 700


def test_reverse_entry_then_second_reversal_is_already_reversed(server, books):
    with ArusClient(server, books.write_key) as arus:
        entry = arus.post_entry(transfer(300))
        reversal = arus.reverse_entry(entry.id, description="undo")
        assert reversal.reverses == entry.id
        assert arus.get_entry(entry.id).reversed_by == reversal.id
        assert arus.get_account("cash").balance == 0
        with pytest.raises(AlreadyReversedError) as err:
            arus.reverse_entry(entry.id)
        assert err.value.status == 409


def test_trial_balance_and_balances_as_of(server, books, settings):
    from arus.jobs import close
    from arus.platform.db import get_engine

    from tests.support.ledgers import age_ledger

    with ArusClient(server, books.read_key) as reader, ArusClient(server, books.write_key) as w:
        w.post_entry(transfer(1_234))
        trial = reader.trial_balance()
        assert trial.balanced and trial.drift == []
        assert trial.balance_of("cash") == 1_234 and trial.balance_of("nope") is None
        day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        with pytest.raises(NotFoundError):
            reader.balances_as_of(day)
        age_ledger(get_engine(settings), books.ledger_id, days=1)  # written on a day now over
        close.close_ledger(get_engine(settings), books.ledger_id, day)
        snapshot = reader.balances_as_of(day)
        assert snapshot.as_of == day.isoformat()
        assert {b.account_code: b.balance for b in snapshot.data} == {
            "cash": 1_234,
            "equity": 1_234,
        }
        assert [b.account_code for b in reader.iter_balances_as_of(day, page_size=1)] == [
            "cash",
            "equity",
        ]


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda a: a.get_account("missing"), NotFoundError),
        (lambda a: a.get_entry(str(uuid.uuid4())), NotFoundError),
        (
            lambda a: a.post_entry(transfer(10**9, debit="equity", credit="cash")),
            InsufficientFundsError,  # cash may not overdraw
        ),
        (lambda a: a.post_entry(transfer(0)), ValidationError),
        (
            lambda a: a.post_entry(
                [NewPosting("cash", "debit", 5), NewPosting("equity", "credit", 6)]
            ),
            UnbalancedEntryError,
        ),
        (
            lambda a: a.post_entry(
                [NewPosting("cash", "debit", 5, "EUR"), NewPosting("equity", "credit", 5, "EUR")]
            ),
            CurrencyMismatchError,
        ),
        (
            lambda a: a.create_account(code="cash", name="Cash", type="asset", currency="USD"),
            DuplicateAccountCodeError,
        ),
    ],
)
def test_each_error_code_raises_its_class_and_is_never_retried(server, books, call, error):
    transport = FaultyTransport()
    with ArusClient(server, books.write_key, transport=transport, sleep=no_sleep) as arus:
        with pytest.raises(error) as raised:
            call(arus)
    assert raised.value.code == error.CODE and 400 <= raised.value.status < 500
    assert len(transport.attempts) == 1, f"a 4xx was retried: {transport.attempts}"


def test_bad_key_is_unauthenticated_and_read_key_is_forbidden(server, books):
    with ArusClient(server, "arus_nope_nope") as stranger:
        with pytest.raises(UnauthenticatedError) as err:
            stranger.list_accounts()
        assert err.value.status == 401
    with ArusClient(server, books.read_key) as reader:
        with pytest.raises(ForbiddenError):
            reader.post_entry(transfer(1))


# --- retries never double-post --------------------------------------------------------------


def _entries(server: str, key: str) -> list[Entry]:
    with ArusClient(server, key) as arus:
        return list(arus.iter_entries())


@pytest.mark.parametrize("kind", ["drop_response", "read_timeout"])
def test_lost_response_is_retried_with_the_same_key_and_replayed(server, books, kind):
    transport = FaultyTransport()
    transport.add(kind, times=2)
    with ArusClient(server, books.write_key, transport=transport, sleep=no_sleep) as arus:
        entry = arus.post_entry(transfer(250))  # no key given: the client generates one
        assert entry.replayed is True, "the retry must replay what the first attempt wrote"
        assert arus.get_account("cash").balance == 250
    keys = [key for method, _, key in transport.attempts if method == "POST"]
    assert len(keys) == 3 and len(set(keys)) == 1, keys
    assert transport.injected == [kind, kind]
    assert [e.id for e in _entries(server, books.read_key)] == [entry.id]


def test_dropped_connection_at_a_real_proxy_never_double_posts(server, books):
    with DroppingProxy(server) as proxy:
        with ArusClient(proxy.url, books.write_key, retry=NO_SLEEP_RETRY) as arus:
            first = arus.post_entry(transfer(40), idempotency_key="proxy-1")
            second = arus.post_entry(transfer(60))
            reversal = arus.reverse_entry(first.id)
    assert proxy.dropped == 3 and proxy.forwarded == 6, (proxy.dropped, proxy.forwarded)
    assert first.replayed and second.replayed and reversal.replayed
    ids = [e.id for e in _entries(server, books.read_key)]
    assert sorted(ids) == sorted([first.id, second.id, reversal.id]), ids
    with ArusClient(server, books.read_key) as reader:
        assert reader.get_account("cash").balance == 60


def test_connection_refused_then_success_posts_once(server, books):
    transport = FaultyTransport()
    transport.add("refuse", times=3)
    with ArusClient(server, books.write_key, transport=transport, sleep=no_sleep) as arus:
        entry = arus.post_entry(transfer(10))
        assert entry.replayed is False  # the refused attempts never reached the server
    assert len(transport.attempts) == 4
    assert len(_entries(server, books.read_key)) == 1


def test_503_is_retried_with_backoff_and_posts_once(server, books):
    transport = FaultyTransport()
    transport.add("503", times=2)
    delays: list[float] = []
    policy = RetryPolicy(max_attempts=4, backoff_base_s=0.5, backoff_max_s=10)
    with ArusClient(
        server, books.write_key, transport=transport, retry=policy, sleep=delays.append,
        rng=lambda: 1.0,
    ) as arus:  # fmt: skip
        arus.post_entry(transfer(20), idempotency_key="k-503")
    assert delays == [0.5, 1.0], delays  # exponential: base * 2^(attempt-1), full jitter at 1.0
    assert [k for _, _, k in transport.attempts] == ["k-503"] * 3
    assert len(_entries(server, books.read_key)) == 1


def test_persistent_5xx_raises_server_error_after_bounded_attempts(server, books):
    transport = FaultyTransport()
    transport.add("503", times=100)
    with ArusClient(
        server, books.write_key, transport=transport, retry=NO_SLEEP_RETRY, sleep=no_sleep
    ) as arus:
        with pytest.raises(ServerError) as err:
            arus.post_entry(transfer(20))
    assert err.value.status == 503 and err.value.code == "unavailable"
    assert len(transport.attempts) == NO_SLEEP_RETRY.max_attempts
    assert _entries(server, books.read_key) == []


def test_unreachable_after_last_attempt_keeps_the_key_for_a_later_retry(server, books):
    transport = FaultyTransport()
    transport.add("drop_response", times=NO_SLEEP_RETRY.max_attempts)
    with ArusClient(
        server, books.write_key, transport=transport, retry=NO_SLEEP_RETRY, sleep=no_sleep
    ) as arus:
        with pytest.raises(ArusConnectionError) as err:
            arus.post_entry(transfer(33))
        key = err.value.idempotency_key
        assert key is not None and err.value.attempts == NO_SLEEP_RETRY.max_attempts
        # Every attempt reached the server; the first wrote the entry, the rest replayed it.
        later = arus.post_entry(transfer(33), idempotency_key=key)
    assert later.replayed is True
    assert [e.id for e in _entries(server, books.read_key)] == [later.id]


def test_reads_are_retried_too(server, books):
    transport = FaultyTransport()
    transport.add("503", times=1, method="GET", path="/v1/accounts")
    transport.add("refuse", times=1, method="GET", path="/v1/accounts")
    with ArusClient(server, books.read_key, transport=transport, sleep=no_sleep) as arus:
        assert arus.get_account("cash").code == "cash"
    assert len(transport.attempts) == 3


def test_timeouts_are_applied(server):
    # A listener that accepts connections (the kernel completes them) but never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        policy = RetryPolicy(max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.01)
        with ArusClient(url, "k", timeout_s=0.2, retry=policy, sleep=no_sleep) as arus:
            with pytest.raises(ArusConnectionError) as err:
                arus.list_accounts()
    assert isinstance(err.value.cause, httpx.ReadTimeout) and err.value.attempts == 2


# --- the client without a server ------------------------------------------------------------


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = no_sleep,
) -> ArusClient:
    return ArusClient(
        "http://arus.test", "k", transport=httpx.MockTransport(handler), retry=retry, sleep=sleep
    )


SPEC_ERRORS = [
    (401, "unauthenticated"),
    (403, "forbidden"),
    (404, "not_found"),
    (409, "idempotency_conflict"),
    (409, "already_reversed"),
    (409, "duplicate_account_code"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (400, "invalid_json"),
    (422, "validation_error"),
    (422, "unbalanced_entry"),
    (422, "insufficient_funds"),
    (422, "currency_mismatch"),
    (422, "idempotency_key_required"),
    (500, "internal"),
]


@pytest.mark.parametrize("status, code", SPEC_ERRORS)
def test_every_spec_error_code_has_its_own_exception_class(status, code):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            json={"error": {"code": code, "message": f"the {code} message"}},
            headers={"X-Request-Id": "req-7"},
        )

    with mock_client(handler, retry=RetryPolicy(max_attempts=1)) as arus:
        with pytest.raises(ArusApiError) as err:
            arus.get_account("cash")
    cls = arus_client.ERRORS_BY_CODE[code]
    assert type(err.value) is cls and cls.CODE == code
    assert (err.value.status, err.value.code) == (status, code)
    assert err.value.message == f"the {code} message" and err.value.request_id == "req-7"


def test_spec_error_codes_map_to_distinct_classes():
    classes = {arus_client.ERRORS_BY_CODE[code] for _, code in SPEC_ERRORS}
    assert len(classes) == len(SPEC_ERRORS)
    assert all(issubclass(cls, ArusApiError) for cls in classes)


def test_non_json_errors_still_raise_by_status():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with mock_client(handler, retry=RetryPolicy(max_attempts=1)) as arus:
        with pytest.raises(ServerError) as err:
            arus.trial_balance()
    assert (err.value.status, err.value.code) == (502, "http_502")


def test_generated_keys_are_reused_by_retries_and_differ_between_calls():
    seen: list[str] = []
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        calls["n"] += 1
        if calls["n"] % 2 == 1:  # every call's first attempt fails
            return httpx.Response(503)
        return httpx.Response(
            201,
            json={"id": "e", "ledger_seq": calls["n"], "description": None,
                  "effective_date": "2025-01-01", "metadata": {}, "postings": [],
                  "reverses": None, "reversed_by": None, "created_at": "t"},
        )  # fmt: skip

    with mock_client(handler) as arus:
        arus.post_entry(transfer(1))
        arus.post_entry(transfer(1))
    assert len(seen) == 4 and seen[0] == seen[1] and seen[2] == seen[3] and seen[0] != seen[2]


def test_retry_after_is_honoured_within_the_cap():
    responses = iter(
        [
            httpx.Response(503, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"data": [], "next_cursor": None}),
        ]
    )
    delays: list[float] = []
    policy = RetryPolicy(max_attempts=2, backoff_base_s=0.1, backoff_max_s=2.0)
    with mock_client(lambda request: next(responses), retry=policy, sleep=delays.append) as arus:
        assert arus.list_accounts().data == []
    assert delays == [2.0]  # Retry-After 3 s, capped at backoff_max_s


def test_backoff_grows_exponentially_is_capped_and_jittered():
    policy = RetryPolicy(max_attempts=10, backoff_base_s=0.25, backoff_max_s=2.0)
    assert [policy.delay_s(n, lambda: 1.0) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert policy.delay_s(3, lambda: 0.5) == 0.5 and policy.delay_s(3, lambda: 0.0) == 0.0
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize("amount", [19.99, 20.0, "1999", True, None])
def test_float_or_non_int_amount_is_refused_before_sending(amount):
    with pytest.raises(TypeError, match="int of minor units"):
        NewPosting("cash", "debit", amount)


def test_client_imports_without_the_server_dependencies():
    """A consumer installs arus-client (httpx), not the server or the ledger's database stack."""
    blocked = ["arus", "sqlalchemy", "pg8000", "flask", "werkzeug", "alembic",
               "functions_framework"]  # fmt: skip
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import arus_client.client\n"
        "print(sorted(m for m in sys.modules if m.startswith('arus')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['arus_client', 'arus_client.client']"
