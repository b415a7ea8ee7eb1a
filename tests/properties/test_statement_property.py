"""Property: a statement is the journal by effective date (SPEC §3.5). For random entries with
random effective dates (posted in random order, so back-dated ones land between others), any
range's opening, lines and closing are what a model of the entries predicts, opening + the
lines = closing, pages continue each other's running balances, and through the last date the
closing is the account's balance."""

from __future__ import annotations

import datetime as dt
import uuid

import hypothesis
from arus.ledger.commands import today_utc
from arus.platform.config import Settings
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.support.ledgers import Api, new_ledger

SETTINGS = hypothesis.settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DAYS = 20  # effective dates from today - DAYS + 1 to today
# (days ago, cash is debited?, amount): cash is an asset, sales revenue.
MOVES = st.lists(
    st.tuples(st.integers(0, DAYS - 1), st.booleans(), st.integers(1, 10**12)),
    min_size=1, max_size=15,
)  # fmt: skip


def _signed(line: dict[str, object], normal_side: str) -> int:
    amount = int(line["amount"])  # type: ignore[call-overload]
    return amount if line["direction"] == normal_side else -amount


@SETTINGS
@given(
    moves=MOVES,
    window=st.tuples(st.integers(0, DAYS + 2), st.integers(0, DAYS + 2)).map(sorted),
    page_size=st.integers(1, 4),
)
def test_opening_plus_lines_is_closing_and_pages_agree_with_a_model(
    api: Api, settings: Settings, moves: list[tuple[int, bool, int]], window: list[int],
    page_size: int,
) -> None:  # fmt: skip
    today = today_utc()
    ledger = new_ledger(settings, "statements")
    api.account(ledger, "cash", allow_negative=True)
    api.account(ledger, "sales", "revenue", allow_negative=True)
    items = []
    for days_ago, cash_debited, amount in moves:
        debit, credit = ("cash", "sales") if cash_debited else ("sales", "cash")
        items.append({
            "idempotency_key": uuid.uuid4().hex,
            "effective_date": (today - dt.timedelta(days=days_ago)).isoformat(),
            "postings": [{"account": debit, "direction": "debit", "amount": amount},
                         {"account": credit, "direction": "credit", "amount": amount}],
        })  # fmt: skip
    posted = api.post("/v1/entries/batch", key=ledger.write_key, json={"entries": items})
    assert posted.status_code == 200, posted.get_json()
    # The model: (effective_date, ledger_seq, cash's signed move).
    journal = sorted(
        (dt.date.fromisoformat(result["entry"]["effective_date"]), result["entry"]["ledger_seq"],
         amount if cash_debited else -amount)
        for result, (_, cash_debited, amount) in zip(posted.get_json()["results"], moves,
                                                     strict=True)
    )  # fmt: skip
    start, end = (today - dt.timedelta(days=DAYS + 1 - w) for w in window)  # may miss them all

    # cash and sales move together: a sale grows both, each on its own normal side.
    for ref, normal_side in (("cash", "debit"), ("sales", "credit")):
        pages, cursor = [], None
        while True:
            query = {"from": start.isoformat(), "to": end.isoformat(), "limit": str(page_size)}
            if cursor:
                query["cursor"] = cursor
            response = api.get(f"/v1/accounts/{ref}/statement", key=ledger.read_key,
                               query_string=query)  # fmt: skip
            assert response.status_code == 200, response.get_json()
            pages.append(response.get_json())
            cursor = pages[-1]["next_cursor"]
            if cursor is None:
                break
            assert len(pages) <= len(moves) + 1, "the pages never end"
        lines = [line for page in pages for line in page["lines"]]
        opening, closing = pages[0]["opening_balance"], pages[0]["closing_balance"]
        expected_lines = [(d, seq, move) for d, seq, move in journal if start <= d <= end]
        assert opening == sum(m for d, _, m in journal if d < start), (ref, journal)
        assert closing == sum(m for d, _, m in journal if d <= end), (ref, journal)
        assert [(dt.date.fromisoformat(line["effective_date"]), line["ledger_seq"],
                 _signed(line, normal_side)) for line in lines] == expected_lines  # fmt: skip
        assert all(p["opening_balance"] == opening and p["closing_balance"] == closing
                   for p in pages)  # fmt: skip
        running = opening
        for line in lines:
            running += _signed(line, normal_side)
            assert line["balance"] == running, (ref, lines)
        assert running == closing, f"{ref}: opening {opening} + lines != closing {closing}"
        assert all(len(p["lines"]) <= page_size for p in pages)
        if end >= max(d for d, _, _ in journal):
            balance = api.get(f"/v1/accounts/{ref}", key=ledger.read_key).get_json()["balance"]
            assert closing == balance, (ref, closing, balance)
