"""The family_finance command line.

    python -m examples.family_finance seed     # the demo's 4 changes, queued in the app's store
    python -m examples.family_finance drain    # send them to Arus, print the zero-drift report
    python -m examples.family_finance demo     # both, on a fresh store

The ledger is reached at --url / ARUS_URL (default http://127.0.0.1:8080) with the write key
--key / ARUS_KEY (the one `arus dev` or `arus ledger create` prints). The app's own store is
--store / FAMILY_FINANCE_STORE: a SQLite file path (default family_finance.sqlite3) or a
database URL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from arus_client import shadow
from arus_client.client import ArusApiError, ArusClient, ArusConnectionError
from sqlalchemy.engine import Engine

from . import store

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_STORE = "family_finance.sqlite3"
MAX_DRAIN_RUNS = 10

# The demo: an expense, corrected, an income, and the expense deleted after all.
DEMO_DAY = dt.date(2025, 1, 15)
DEMO_EXPENSE_MINOR, DEMO_EXPENSE_CORRECTED_MINOR = 4_250, 3_899
DEMO_INCOME_MINOR = 250_000


def seed(engine: Engine) -> list[str]:
    """The four changes of the demo; returns what was done, one line each."""
    groceries = store.add_transaction(
        engine,
        kind="expense",
        amount_minor=DEMO_EXPENSE_MINOR,
        category="groceries",
        occurred_on=DEMO_DAY,
        description="weekly shop",
    )
    version = store.change_amount(engine, groceries, DEMO_EXPENSE_CORRECTED_MINOR)
    salary = store.add_transaction(
        engine,
        kind="income",
        amount_minor=DEMO_INCOME_MINOR,
        category="salary",
        occurred_on=DEMO_DAY,
        description="January salary",
    )
    deleted = store.delete_transaction(engine, groceries)
    return [
        f"create expense {groceries} groceries {DEMO_EXPENSE_MINOR}",
        f"update expense {groceries} to {DEMO_EXPENSE_CORRECTED_MINOR} (v{version})",
        f"create income  {salary} salary {DEMO_INCOME_MINOR}",
        f"delete expense {groceries} (v{deleted})",
    ]


def drain(
    engine: Engine, client: ArusClient, config: shadow.ShadowConfig, *, wait_s: float
) -> tuple[int, shadow.DrainResult]:
    """Drain until the queue is empty, or nothing more is due within wait_s. Returns the
    pending count at the start and the totals (retrying and errors: from the last run)."""
    pending_at_start = shadow.queue_status(engine)["pending"]
    deadline = time.monotonic() + wait_s
    total = shadow.DrainResult()
    for _ in range(MAX_DRAIN_RUNS):
        run = shadow.drain(engine, client, config)
        total.applied += run.applied
        total.skipped += run.skipped
        total.dead += run.dead
        total.retry_later, total.waiting, total.errors = run.retry_later, run.waiting, run.errors
        next_due = _next_due_s(engine)
        if next_due is None or time.monotonic() + next_due > deadline:
            break
        time.sleep(next_due)
    return pending_at_start, total


def _next_due_s(engine: Engine) -> float | None:
    with engine.connect() as conn:
        earliest = conn.execute(
            sa.select(sa.func.min(shadow.shadow_outbox.c.next_attempt_at)).where(
                shadow.shadow_outbox.c.status == "pending"
            )
        ).scalar_one_or_none()
    if not isinstance(earliest, dt.datetime):
        return None
    return max(0.0, (earliest - shadow.utcnow()).total_seconds())


def report(engine: Engine, client: ArusClient, config: shadow.ShadowConfig) -> dict[str, Any]:
    expected = shadow.expected_balances(config, store.live_transactions(engine))
    assert expected[config.cash_code] == store.cash_balance(engine), "the app's own cash"
    return shadow.consistency_report(client, config, expected, queue=shadow.queue_status(engine))


def render(report_: dict[str, Any], config: shadow.ShadowConfig) -> list[str]:
    """The report for people: the cash line first, then every account compared."""
    cash = next(a for a in report_["accounts"] if a["account_code"] == config.cash_code)
    relation = "==" if cash["expected"] == cash["ledger"] else "!="
    lines = [
        f"{report_['status']}: expected cash {cash['expected']} {relation} "
        f"ledger cash {cash['ledger']}"
    ]
    width = max(len(a["account_code"]) for a in report_["accounts"])
    for account in report_["accounts"]:
        mark = "" if account["expected"] == account["ledger"] else "   <-- differs"
        lines.append(
            f"  {account['account_code']:<{width}}  expected {account['expected']:>10}  "
            f"ledger {account['ledger']:>10}{mark}"
        )
    for difference in report_["differences"]:
        if difference.get("reason") != "balance":
            lines.append(f"  difference: {json.dumps(difference, sort_keys=True)}")
    if "note" in report_:
        lines.append(f"  note: {report_['note']}")
    return lines


def _client(args: argparse.Namespace) -> ArusClient:
    if not args.key:
        raise SystemExit(
            "family_finance: no API key: pass --key or set ARUS_KEY (arus dev prints one)"
        )
    return ArusClient(args.url, args.key, timeout_s=args.timeout_s)


def _print_report(args: argparse.Namespace, report_: dict[str, Any], household: Any) -> int:
    if args.json:
        print(json.dumps(report_, indent=2, sort_keys=True))
    else:
        print("\n".join(render(report_, household.shadow_config)))
    return 0 if report_["status"] == "zero_drift" else 1


def cmd_seed(args: argparse.Namespace, engine: Engine, household: store.Household) -> int:
    for line in seed(engine):
        print(f"queued: {line}")
    print(f"app cash balance: {store.cash_balance(engine)} (namespace {household.namespace})")
    print(f"shadow queue: {shadow.queue_status(engine)['pending']} pending")
    return 0


def cmd_drain(args: argparse.Namespace, engine: Engine, household: store.Household) -> int:
    config = household.shadow_config
    with _client(args) as client:
        pending, total = drain(engine, client, config, wait_s=args.wait_s)
        print(
            f"drained {total.drained}/{pending} (applied {total.applied}, "
            f"skipped {total.skipped}, retrying {total.retry_later}, dead {total.dead})"
        )
        for error in total.errors:
            print(f"  error: {error}")
        return _print_report(args, report(engine, client, config), household)


def cmd_report(args: argparse.Namespace, engine: Engine, household: store.Household) -> int:
    with _client(args) as client:
        return _print_report(args, report(engine, client, household.shadow_config), household)


def cmd_demo(args: argparse.Namespace, engine: Engine, household: store.Household) -> int:
    if shadow.queue_status(engine) != dict.fromkeys(shadow.STATUSES, 0):
        print(f"family_finance: {args.store} is not empty; demo needs a fresh store")
        return 2
    cmd_seed(args, engine, household)
    return cmd_drain(args, engine, household)


def cmd_add(args: argparse.Namespace, engine: Engine, household: store.Household) -> int:
    source_id = store.add_transaction(
        engine,
        kind=args.kind,
        amount_minor=args.amount_minor,
        category=args.category,
        occurred_on=dt.date.fromisoformat(args.date),
        description=args.description,
    )
    print(f"queued: create {args.kind} {source_id} {args.amount_minor}")
    return 0


def cmd_edit(args: argparse.Namespace, engine: Engine, household: store.Household) -> int:
    version = store.change_amount(engine, args.id, args.amount_minor)
    print(f"queued: update {args.id} to {args.amount_minor} (v{version})")
    return 0


def cmd_delete(args: argparse.Namespace, engine: Engine, household: store.Household) -> int:
    version = store.delete_transaction(engine, args.id)
    print(f"queued: delete {args.id} (v{version})")
    return 0


def cmd_status(args: argparse.Namespace, engine: Engine, household: store.Household) -> int:
    status = {
        "namespace": household.namespace,
        "currency": household.currency,
        "cash_balance": store.cash_balance(engine),
        "queue": shadow.queue_status(engine),
    }
    print(json.dumps(status, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.family_finance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", default=os.environ.get("FAMILY_FINANCE_STORE", DEFAULT_STORE))
    parser.add_argument("--url", default=os.environ.get("ARUS_URL", DEFAULT_URL))
    parser.add_argument("--key", default=os.environ.get("ARUS_KEY"))
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument(
        "--wait-s", type=float, default=30.0, help="how long drain may wait for retries"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed", help="queue the demo's 4 changes").set_defaults(func=cmd_seed)
    sub.add_parser("drain", help="send the queue to Arus and report").set_defaults(func=cmd_drain)
    sub.add_parser("report", help="compare the app with the ledger").set_defaults(func=cmd_report)
    sub.add_parser("demo", help="seed and drain a fresh store").set_defaults(func=cmd_demo)
    sub.add_parser("status", help="the store's namespace and queue").set_defaults(func=cmd_status)
    add = sub.add_parser("add", help="record an expense or an income")
    add.add_argument("kind", choices=("expense", "income"))
    add.add_argument("--amount-minor", type=int, required=True, help="e.g. 1999 for 19.99")
    add.add_argument("--category", default="general")
    add.add_argument("--date", default=dt.date.today().isoformat())
    add.add_argument("--description")
    add.set_defaults(func=cmd_add)
    edit = sub.add_parser("edit", help="change a transaction's amount")
    edit.add_argument("id")
    edit.add_argument("--amount-minor", type=int, required=True)
    edit.set_defaults(func=cmd_edit)
    delete = sub.add_parser("delete", help="delete a transaction")
    delete.add_argument("id")
    delete.set_defaults(func=cmd_delete)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "://" not in args.store:
        Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    engine = store.engine_for(args.store)
    try:
        household = store.open_store(engine)
        status: int = args.func(args, engine, household)
    except (shadow.ShadowInputError, store.NoSuchTransaction) as exc:
        print(f"family_finance: {exc}", file=sys.stderr)
        return 2
    except shadow.ShadowConfigError as exc:
        print(f"family_finance: {exc}", file=sys.stderr)
        return 3
    except (ArusConnectionError, ArusApiError) as exc:
        print(f"family_finance: the ledger did not answer: {exc}", file=sys.stderr)
        return 4
    finally:
        engine.dispose()
    return status
