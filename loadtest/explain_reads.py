"""The plans of the reads (filters, instants, rollups, statements) on 100,000+ postings.

    python loadtest/explain_reads.py --out docs/reports/explain-reads.md

A scratch embedded PostgreSQL (the `make bench` set-up: 10,000 accounts), then 60,000 entries
(120,000 postings) through the engine's batch call: effective dates over 60 days, metadata on
every entry, one hold in fifty; then yesterday is closed. After VACUUM ANALYZE, each read runs
exactly as the API runs it (the statement `arus.ledger.reads` builds, behind the key check of
`access.Caller`) under `EXPLAIN (ANALYZE, BUFFERS)`, and the report keeps each plan.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from arus.errors import NotFound
from arus.ledger import reads
from arus.ledger.access import Caller, Credentials
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

sys.path.insert(0, str(Path(__file__).parent))
from bench import Bench, Target

ENTRIES, BATCH = 60_000, 1_000
DAYS = 60


class Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain)
def _explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (ANALYZE, BUFFERS) " + compiler.process(element.statement, **kw)


class ExplainingCaller(Caller):
    """A Caller whose reads are explained instead of answered."""

    plans: list[str]

    def fetch(self, conn: Any, query: Any) -> list[Any]:
        rows = conn.execute(Explain(self.statement(query))).scalars().all()
        self.plans.append("\n".join(rows))
        return []


def load(bench: Target) -> None:
    # Beside the bench's 10,001 USD asset accounts: 300 EUR revenue accounts with metadata.
    bench.sql(f"""
        WITH a AS (
            INSERT INTO accounts (ledger_id, code, name, type, currency, allow_negative, metadata)
            SELECT '{bench.ledger_id}', 'r' || g, 'r' || g, 'revenue', 'EUR', true,
                   jsonb_build_object('region', CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'uk' END)
            FROM generate_series(1, 300) g
            RETURNING id)
        INSERT INTO balances (account_id, ledger_id, currency, normal_side, allow_negative)
        SELECT id, '{bench.ledger_id}', 'EUR', 'credit', true FROM a RETURNING 1""")
    today = dt.datetime.now(dt.UTC).date()
    for start in range(0, ENTRIES, BATCH):
        items = []
        for n in range(start, start + BATCH):
            pending = n % 50 == 0
            items.append({
                "key": f"load-{n}", "fingerprint": f"load-{n}",
                "effective_date": (today - dt.timedelta(days=n % DAYS)).isoformat(),
                "metadata": {"order": f"o{n}", "channel": ("web", "pos", "api")[n % 3]},
                "pending": pending, "expires_at": None,
                # One entry in ten debits the hot account: a long history, for its postings.
                "lines": [{"account_code": "hot" if n % 10 == 0 else f"c{1 + n % 10_000}",
                           "direction": "debit", "amount": 1},
                          {"account_code": f"c{1 + (n * 7) % 10_000}", "direction": "credit",
                           "amount": 1}],
            })  # fmt: skip
        bench.sql(
            "SELECT arus_post_batch('{}', decode('{}', 'hex'), '{}'::jsonb, false)".format(
                bench.key_id, bench.secret_hash, json.dumps(items).replace("'", "''")
            )
        )
    # Yesterday closed, for the rollup of a closed day: the ledger and its accounts made to
    # exist before it, so that its snapshot holds every account.
    for table, key in (("ledgers", "id"), ("accounts", "ledger_id")):
        bench.sql(f"UPDATE {table} SET created_at = created_at - interval '2 days' "
                  f"WHERE {key} = '{bench.ledger_id}'")  # fmt: skip
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    report = bench.sql(f"SELECT arus_close_day('{bench.ledger_id}', '{yesterday}')")[0][0]
    assert report["ok"], report
    bench.sql("VACUUM ANALYZE")


def explain(bench: Target) -> list[tuple[str, str, str]]:
    key_id, secret = bench.read_key.removeprefix("arus_").split("_", 1)
    import hashlib

    credentials = Credentials(key_id=key_id, secret_hash=hashlib.sha256(secret.encode()).digest())
    today = dt.datetime.now(dt.UTC).date()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    yesterday = today - dt.timedelta(days=1)
    statement_days = [("from", (today - dt.timedelta(days=29)).isoformat()),
                      ("to", today.isoformat())]  # fmt: skip
    reads_to_explain: list[tuple[str, str, Any]] = [
        ("GET /v1/entries?account=c42",
         "postings_account_instant_idx, pending_postings_account_idx",
         lambda s, c: reads.list_entries(s, c, [("account", "c42")], limit=50, cursor=None)),
        ("GET /v1/entries?effective_from=&effective_to= (one day)", "entries_effective_idx",
         lambda s, c: reads.list_entries(s, c, [("effective_from", today.isoformat()),
                                                ("effective_to", today.isoformat())],
                                         limit=50, cursor=None)),
        ("GET /v1/entries?status=pending", "entries_pending_idx",
         lambda s, c: reads.list_entries(s, c, [("status", "pending")], limit=50, cursor=None)),
        ("GET /v1/entries?metadata.order=o4242", "entries_metadata_idx",
         lambda s, c: reads.list_entries(s, c, [("metadata.order", "o4242")], limit=50,
                                         cursor=None)),
        ("GET /v1/accounts?type=revenue", "accounts_type_idx",
         lambda s, c: reads.list_accounts(s, c, [("type", "revenue")], limit=50, cursor=None)),
        ("GET /v1/accounts?currency=EUR", "accounts_currency_idx",
         lambda s, c: reads.list_accounts(s, c, [("currency", "EUR")], limit=50, cursor=None)),
        ("GET /v1/accounts?metadata.region=eu", "accounts_metadata_idx",
         lambda s, c: reads.list_accounts(s, c, [("metadata.region", "eu")], limit=50,
                                          cursor=None)),
        # Not postings_account_idx, which would stop after one page: the planner takes every
        # account for an average one (12 postings), so a long history is read and sorted.
        ("GET /v1/accounts/hot/postings (4,800 postings)", "postings_account_instant_idx",
         lambda s, c: reads.account_postings(s, c, "hot", limit=50, cursor=None)),
        ("GET /v1/accounts/c42/balance?at=", "postings_account_instant_idx",
         lambda s, c: reads.account_balance_at(s, c, "c42", now)),
        ("GET /v1/balances?at= (a page of 50)", "postings_account_instant_idx",
         lambda s, c: reads.balances_at(s, c, now, limit=50, cursor=None)),
        # A range of the codes: c4, c40..c49, c400..c499, c4000..c4999.
        ("GET /v1/rollups?prefix=c4 (1,111 accounts)", "accounts_ledger_code_key, balances_pkey",
         lambda s, c: reads.rollup(s, c, [("prefix", "c4")])),
        ("GET /v1/rollups?prefix=c4&at=",
         "accounts_ledger_code_key, balances_pkey, postings_account_instant_idx",
         lambda s, c: reads.rollup(s, c, [("prefix", "c4"), ("at", now)])),
        ("GET /v1/rollups?prefix=c4&as_of= (a closed day)",
         "accounts_ledger_code_key, balances_pkey, balance_snapshots_pkey",
         lambda s, c: reads.rollup(s, c, [("prefix", "c4"), ("as_of", yesterday.isoformat())])),
        ("GET /v1/accounts/c42/statement?from=&to= (30 days)",
         "accounts_ledger_code_key, postings_account_instant_idx, entries_pkey",
         lambda s, c: reads.account_statement(s, c, "c42", statement_days, limit=50,
                                              cursor=None)),
        ("GET /v1/accounts/hot/statement?from=&to= (30 days of 4,800 postings)",
         "accounts_ledger_code_key, postings_account_instant_idx, entries_pkey",
         lambda s, c: reads.account_statement(s, c, "hot", statement_days, limit=50,
                                              cursor=None)),
    ]  # fmt: skip
    out = []
    with bench.db._connect() as conn:
        for title, index, run in reads_to_explain:
            caller = ExplainingCaller(credentials, "read")
            object.__setattr__(caller, "plans", [])
            try:
                run(caller, conn)
            except NotFound:  # an explained read returns no rows
                pass
            out.append((title, index, _uses(title, index, caller.plans[-1])))
        # The close's last ledger_seq before its cut-off (arus_close_day), closing yesterday:
        # every entry of the load is from today, the case a backward scan by ledger_seq is worst.
        cutoff = f"{today.isoformat()}T00:00:00Z"
        plan = "\n".join(
            row[0]
            for row in conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT coalesce(max(ledger_seq), 0) FROM entries "
                f"WHERE ledger_id = '{bench.ledger_id}' AND created_at < '{cutoff}'"
            )
        )
        title = "arus_close_day: the last ledger_seq before the cut-off"
        out.append((title, "entries_ledger_created_idx", _uses(title, "entries_ledger_created_idx",
                                                               plan)))  # fmt: skip
    return out


def _uses(title: str, indexes: str, plan: str) -> str:
    """The plan, if it uses every index named (by its whole name), else fails the run."""
    for index in indexes.split(", "):
        assert re.search(rf"\b{index}\b", plan), f"{title}: {index} not in the plan\n{plan}"
    print(f"{title}: uses {indexes}", flush=True)
    return plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/explain-reads.md"))
    args = parser.parse_args()
    bench = Bench(argparse.Namespace(duration=1, only="pgbench"),
                  Path(tempfile.mkdtemp(prefix="arus-explain-")))  # fmt: skip
    try:
        bench.setup()
        target = bench.after  # this checkout's database (the bench's Target since b0456b9)
        load(target)
        postings = target.sql("SELECT count(*) FROM postings")[0][0]
        pending = target.sql("SELECT count(*) FROM pending_postings")[0][0]
        plans = explain(target)
    finally:
        bench.db.stop()
        shutil.rmtree(bench.work, ignore_errors=True)
    lines = [
        "# Plans of the filtered reads, balances at an instant, rollups and statements",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d} with `python loadtest/explain_reads.py "
        f"--out {args.out}` (embedded PostgreSQL 18, 2 cores): one ledger of 10,301 accounts, "
        f"{ENTRIES:,} entries, {postings:,} postings and {pending:,} pending postings, effective "
        f"dates over {DAYS} days, after VACUUM ANALYZE. Each plan is the statement the API runs "
        "(the read behind the key check), from `EXPLAIN (ANALYZE, BUFFERS)`; the script fails "
        "if a plan does not use every index named.",
        "",
        "After migration 0007 (the lean schema: domains and statement-level checks instead of "
        "per-row CHECKs and foreign keys; `balances_ledger_idx` and `api_keys_ledger_idx`, "
        "which no read uses, dropped). Reproduce: `python loadtest/explain_reads.py --out "
        "docs/reports/explain-reads.md`; by hand, on any migrated database, `EXPLAIN (ANALYZE, "
        "BUFFERS)` the statement each section names.",
        "",
        "`postings_account_idx` is kept for `GET /v1/accounts/{id}/postings` but the planner "
        "does not take it: it plans every account for an average one (12 postings), so a long "
        "history is read and sorted (the hot account's page, below); the read needs its plan "
        "fixed, not the index dropped.",
        "",
        "A rollup is one range of `accounts_ledger_code_key` and one `balances_pkey` probe per "
        "account of the range (`balance_snapshots_pkey` for `as_of`, plus one "
        "`postings_account_instant_idx` lookup for `at`): its cost follows the prefix's "
        "accounts, never the ledger's postings. The `as_of` plan reads `daily_closes` by a "
        "sequential scan because this database holds one close; its primary key serves it "
        "when there are more.",
        "",
        "A statement reads every posting of the account dated up to `to` (postings carry no "
        "effective date: each is joined to its entry by `entries_pkey`), once for the opening, "
        "the closing and the balance before the page, and once for the page, sorted: linear in "
        "the account's history (the hot account: 4,800 postings, twice). Bounding it by the "
        "range needs the entry's effective date on its postings, with an index by account and "
        "date (a migration, not made here).",
        "",
    ]
    for title, index, plan in plans:
        lines += [f"## {title}", "", f"Index: `{index}`.", "", "```", plan, "```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
