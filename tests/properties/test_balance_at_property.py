"""Property: the balance at any instant equals the postings committed up to it (SPEC §3.3)."""

from __future__ import annotations

import datetime as dt
import uuid

import hypothesis
from arus.platform.config import Settings
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.support.ledgers import Api, new_ledger

SETTINGS = hypothesis.settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ONE_MICROSECOND = dt.timedelta(microseconds=1)


def _instant(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@SETTINGS
@given(moves=st.lists(st.tuples(st.booleans(), st.integers(1, 10_000)), min_size=1, max_size=12))
def test_balance_at_any_instant_equals_the_postings_committed_up_to_it(
    api: Api, settings: Settings, moves: list[tuple[bool, int]]
) -> None:
    ledger = new_ledger(settings, "instants")
    api.account(ledger, "wallet", allow_negative=True)
    api.account(ledger, "equity", "equity", allow_negative=True)
    history: list[tuple[dt.datetime, int]] = []  # (instant, signed move of wallet)
    for inflow, amount in moves:
        debit, credit = ("wallet", "equity") if inflow else ("equity", "wallet")
        lines = [{"account": debit, "direction": "debit", "amount": amount},
                 {"account": credit, "direction": "credit", "amount": amount}]  # fmt: skip
        response = api.post("/v1/entries", key=ledger.write_key, idempotency_key=uuid.uuid4().hex,
                            json={"postings": lines})  # fmt: skip
        assert response.status_code == 201, response.get_json()
        created = dt.datetime.fromisoformat(
            response.get_json()["created_at"].replace("Z", "+00:00")
        )
        history.append((created, amount if inflow else -amount))

    probes = sorted(
        {t + d for t, _ in history for d in (-ONE_MICROSECOND, dt.timedelta(0), ONE_MICROSECOND)}
    )
    for at in probes:
        expected = sum(move for instant, move in history if instant <= at)
        got = api.get("/v1/accounts/wallet/balance", key=ledger.read_key,
                      query_string={"at": _instant(at)}).get_json()  # fmt: skip
        assert got["balance"] == expected, (at, history, got)
        listed = api.get("/v1/balances", key=ledger.read_key,
                         query_string={"at": _instant(at)}).get_json()["data"]  # fmt: skip
        assert {b["account_code"]: b["balance"] for b in listed} == {
            "equity": expected, "wallet": expected,  # both grow on an inflow: their normal sides
        }, (at, listed)  # fmt: skip
