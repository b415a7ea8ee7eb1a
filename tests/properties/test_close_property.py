"""Property: each close's balances are the sums of the postings dated on or before its day,
whatever order entries were posted and closes were run in (SPEC §3.3)."""

from __future__ import annotations

import collections
import datetime as dt
import uuid

import hypothesis
from arus.jobs import close
from arus.ledger.commands import today_utc
from arus.platform.config import Settings
from arus.platform.db import get_engine
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.support.ledgers import Api, backdate_ledger, new_ledger

SETTINGS = hypothesis.settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DAYS = 8  # the ledger's age: days 1..7 ago can be closed
ACCOUNTS = ("cash", "bank", "equity")
# A step posts an entry (days ago it is dated, debit, credit, amount) or closes a day.
POST = st.tuples(st.just("post"), st.integers(0, DAYS - 1), st.sampled_from(ACCOUNTS),
                 st.sampled_from(ACCOUNTS), st.integers(1, 1_000))  # fmt: skip
CLOSE = st.tuples(st.just("close"), st.integers(1, DAYS - 1))


@SETTINGS
@given(steps=st.lists(st.one_of(POST, CLOSE), min_size=1, max_size=14))
def test_each_close_is_the_postings_dated_through_its_day(
    api: Api, settings: Settings, steps: list[tuple]
) -> None:
    engine = get_engine(settings)
    ledger = new_ledger(settings, "closes")
    backdate_ledger(engine, ledger.ledger_id, days=DAYS)
    for code in ACCOUNTS:
        api.account(ledger, code, "asset" if code != "equity" else "equity", allow_negative=True)
    today = today_utc()
    normal = {"cash": "debit", "bank": "debit", "equity": "credit"}
    posted: list[tuple[dt.date, str, int]] = []  # (effective date, account, signed amount)
    last_close: dt.date | None = None
    for step in steps:
        if step[0] == "post":
            _, ago, debit, credit, amount = step
            day = today - dt.timedelta(days=ago)
            lines = [{"account": debit, "direction": "debit", "amount": amount},
                     {"account": credit, "direction": "credit", "amount": amount}]  # fmt: skip
            body = {"postings": lines, "effective_date": day.isoformat()}
            response = api.post("/v1/entries", key=ledger.write_key,
                                idempotency_key=uuid.uuid4().hex, json=body)  # fmt: skip
            if last_close is not None and day <= last_close:
                assert response.status_code == 422, response.get_json()
                assert response.get_json()["error"]["code"] == "period_closed"
                continue
            assert response.status_code == 201, response.get_json()
            for account, direction in ((debit, "debit"), (credit, "credit")):
                posted.append((day, account, amount if normal[account] == direction else -amount))
            continue
        day = today - dt.timedelta(days=step[1])
        if last_close is not None and day < last_close:
            continue  # a day before the last close is refused (test_close_by_effective_date)
        report = close.close_ledger(engine, ledger.ledger_id, day)
        assert report["ok"], report
        last_close = day
        expected: dict[str, int] = collections.defaultdict(int)
        for dated, account, signed in posted:
            if dated <= day:
                expected[account] += signed
        got = api.get("/v1/balances", key=ledger.read_key,
                      query_string={"as_of": day.isoformat()}).get_json()["data"]  # fmt: skip
        assert {b["account_code"]: b["balance"] for b in got} == dict(expected), (day, steps)
