"""Shadow writes: mirror a consumer app's own transactions into an Arus ledger.

A consumer (a household-finance app, say) keeps its own store and its own balances; Arus runs
beside it as a shadow until the two are proven to agree. This module is the consumer-side half
(docs/shadow-write-analysis.md is the design):

- `enqueue_create` / `enqueue_update` / `enqueue_delete` add a row to `shadow_outbox`, a table
  in the consumer's own database, on the consumer's own connection, inside the consumer's own
  transaction. No network call, no read of the ledger: the consumer's write commits or rolls
  back exactly as it would without Arus, and its balances are never touched.
- `drain` sends queued changes to the ledger later, with bounded retries and per-item
  exponential backoff. Per source id it works in version order; a version at or below the one
  already applied is stale and skipped; every request carries a deterministic idempotency key
  (`shadow:<namespace>:<source id>:v<version>:post|reverse`), so a retry, a duplicate delivery or
  a second drainer can only replay what the ledger already did.
- An update reverses the entry of the previous applied version (known from `shadow_links`) and
  posts the new version; a delete only reverses.
- A day the ledger has closed stays closed (`period_closed`): a version dated into it is
  posted into the ledger's first open day, with its own date kept in the entry's metadata
  (`original_effective_date`). The day chosen is written to the queued item before it is
  posted, so a retry sends the same request and replays; a reversal of an entry in a closed day
  is dated into the first open day as well.
- `consistency_report` compares the consumer's expected balances with the ledger's.

The chart (per namespace, one currency): `<ns>:cash` (asset, may go negative: a household can
overdraw and the shadow must never refuse what the consumer accepted), `<ns>:income` (revenue)
and `<ns>:expenses:<category>` (expense). An expense of X debits its expense account and credits
cash; an income of X debits cash and credits income. Accounts are created on first use with an
idempotency key; an account that already exists with the right type and currency is adopted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from arus_client.client import (
    AlreadyReversedError,
    ArusApiError,
    ArusClient,
    ArusConnectionError,
    DuplicateAccountCodeError,
    ForbiddenError,
    IdempotencyConflictError,
    NewPosting,
    PeriodClosedError,
    ServerError,
    UnauthenticatedError,
)

log = logging.getLogger("arus_client.shadow")
T = TypeVar("T")

Kind = Literal["expense", "income"]
Op = Literal["create", "update", "delete"]
KINDS: tuple[Kind, ...] = ("expense", "income")
OPS: tuple[Op, ...] = ("create", "update", "delete")
STATUSES = ("pending", "done", "skipped", "dead")

INT64_MAX = 9_223_372_036_854_775_807
MAX_DESCRIPTION_CHARS = 200
DEFAULT_MAX_ITEMS_PER_RUN = 500

_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9_-]{0,23}")
_SOURCE_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_CATEGORY = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_CURRENCY = re.compile(r"[A-Z]{3}")


class ShadowInputError(ValueError):
    """A consumer change that cannot be mirrored; refused before anything is queued."""


class AmountTypeError(ShadowInputError, TypeError):
    """Money given as anything but an int of minor units (a float above all)."""


class ShadowConfigError(RuntimeError):
    """The ledger does not fit this shadow (wrong key, or an account of another type)."""


# --- the consumer's changes -----------------------------------------------------------------


def check_amount_minor(value: object, *, field_name: str = "amount_minor") -> int:
    """An int of minor units in 1..int64 max. Floats, Decimals, strings and bools are refused:
    19.99 is not a number of cents, and guessing would move money."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise AmountTypeError(
            f"{field_name} must be an int of minor units (1999 for 19.99), "
            f"not {type(value).__name__} {value!r}"
        )
    if not 1 <= value <= INT64_MAX:
        raise ShadowInputError(f"{field_name} must be between 1 and {INT64_MAX}, not {value}")
    return value


@dataclass(frozen=True)
class ShadowTransaction:
    """One version of one of the consumer's transactions, as it should appear in the ledger."""

    source_id: str  # the consumer's own id for the transaction
    version: int  # bumped by the consumer on every change, delete included
    kind: Kind
    amount_minor: int
    occurred_on: dt.date
    category: str = "general"
    description: str | None = None

    def __post_init__(self) -> None:
        check_source(self.source_id, self.version)
        if self.kind not in KINDS:
            raise ShadowInputError(f"kind must be expense or income, not {self.kind!r}")
        check_amount_minor(self.amount_minor)
        if not isinstance(self.occurred_on, dt.date) or isinstance(self.occurred_on, dt.datetime):
            raise ShadowInputError(f"occurred_on must be a date, not {self.occurred_on!r}")
        if not isinstance(self.category, str) or not _CATEGORY.fullmatch(self.category):
            raise ShadowInputError(
                f"category must be 1-32 of a-z 0-9 _ - (starting alphanumeric): {self.category!r}"
            )
        if self.description is not None and (
            not isinstance(self.description, str) or len(self.description) > MAX_DESCRIPTION_CHARS
        ):
            raise ShadowInputError(f"description must be text of at most {MAX_DESCRIPTION_CHARS}")

    def to_payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "amount_minor": self.amount_minor,
            "occurred_on": self.occurred_on.isoformat(),
            "category": self.category,
            "description": self.description,
        }

    @classmethod
    def from_payload(
        cls, source_id: str, version: int, payload: Mapping[str, Any]
    ) -> ShadowTransaction:
        return cls(
            source_id=source_id,
            version=version,
            kind=payload["kind"],
            amount_minor=payload["amount_minor"],
            occurred_on=dt.date.fromisoformat(payload["occurred_on"]),
            category=payload["category"],
            description=payload.get("description"),
        )


def check_source(source_id: object, version: object) -> None:
    if not isinstance(source_id, str) or not _SOURCE_ID.fullmatch(source_id):
        raise ShadowInputError(f"source_id must be 1-100 of A-Z a-z 0-9 _ . -: {source_id!r}")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= INT64_MAX:
        raise ShadowInputError(f"version must be a positive int, not {version!r}")


@dataclass(frozen=True)
class ShadowConfig:
    """Where and how one consumer store is mirrored: its namespace in the ledger, its currency,
    and the drain's limits."""

    namespace: str  # prefix of every account code and idempotency key, e.g. "ff-1a2b3c4d"
    currency: str = "USD"
    backoff_base_s: float = 2.0  # first retry of a failed item after ~this long
    backoff_max_s: float = 600.0  # retries of one item are never further apart than this
    max_items_per_run: int = DEFAULT_MAX_ITEMS_PER_RUN

    def __post_init__(self) -> None:
        if not _NAMESPACE.fullmatch(self.namespace):
            raise ShadowInputError(
                f"namespace must be 1-24 of a-z 0-9 _ - (starting alphanumeric): {self.namespace!r}"
            )
        if not _CURRENCY.fullmatch(self.currency):
            raise ShadowInputError(f"currency must be three upper-case letters: {self.currency!r}")
        if not 0 < self.backoff_base_s <= self.backoff_max_s:
            raise ShadowInputError("backoffs must satisfy 0 < backoff_base_s <= backoff_max_s")
        if not 1 <= self.max_items_per_run <= 10_000:
            raise ShadowInputError("max_items_per_run must be within 1..10000")

    @property
    def cash_code(self) -> str:
        return f"{self.namespace}:cash"

    @property
    def income_code(self) -> str:
        return f"{self.namespace}:income"

    def expense_code(self, category: str) -> str:
        return f"{self.namespace}:expenses:{category}"

    def post_key(self, source_id: str, version: int) -> str:
        return f"shadow:{self.namespace}:{source_id}:v{version}:post"

    def reverse_key(self, source_id: str, version: int) -> str:
        """The key of the reversal of version `version`'s entry: one per reversed version, so
        whichever later change triggers it, every attempt sends the same request."""
        return f"shadow:{self.namespace}:{source_id}:v{version}:reverse"

    def account_key(self, code: str) -> str:
        return f"shadow:{self.namespace}:account:{code}"


@dataclass(frozen=True)
class ChartAccount:
    code: str
    name: str
    type: Literal["asset", "expense", "revenue"]
    allow_negative: bool


def chart_for(config: ShadowConfig, txn: ShadowTransaction) -> tuple[ChartAccount, ChartAccount]:
    """The (debit, credit) accounts of a transaction's entry."""
    cash = ChartAccount(config.cash_code, "Cash", "asset", allow_negative=True)
    if txn.kind == "income":
        return cash, ChartAccount(config.income_code, "Income", "revenue", allow_negative=False)
    expense = ChartAccount(
        config.expense_code(txn.category),
        f"Expenses: {txn.category}",
        "expense",
        allow_negative=False,
    )
    return expense, cash


# --- the consumer-side tables ---------------------------------------------------------------

metadata = sa.MetaData()
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

shadow_outbox = sa.Table(
    "shadow_outbox",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(100), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("op", sa.String(8), nullable=False),
    # The transaction as of this version (SQL NULL for a delete).
    sa.Column("payload", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("status", sa.String(8), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),  # naive UTC
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("entry_id", sa.String(36), nullable=True),  # the ledger entry it posted, if any
    sa.Column("enqueued_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    sa.CheckConstraint("op IN ('create', 'update', 'delete')", name="shadow_outbox_op"),
    sa.CheckConstraint(
        "status IN ('pending', 'done', 'skipped', 'dead')", name="shadow_outbox_status"
    ),
    sa.CheckConstraint("(op = 'delete') = (payload IS NULL)", name="shadow_outbox_payload"),
    sa.Index("shadow_outbox_pending_idx", "status", "source_id", "version"),
)

# One row per version that reached the ledger: its entry and, once undone, the reversal.
shadow_links = sa.Table(
    "shadow_links",
    metadata,
    sa.Column("source_id", sa.String(100), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("entry_id", sa.String(36), nullable=False),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("reversal_entry_id", sa.String(36), nullable=True),
    sa.Column("posted_at", sa.DateTime, nullable=False),
)

# Per source id: the highest version applied, and which version's entry is live in the ledger.
shadow_state = sa.Table(
    "shadow_state",
    metadata,
    sa.Column("source_id", sa.String(100), primary_key=True),
    sa.Column("applied_version", sa.BigInteger, nullable=False),
    sa.Column("live_version", sa.BigInteger, nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

shadow_accounts = sa.Table(
    "shadow_accounts",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


def create_tables(bind: Engine | Connection) -> None:
    """Create the shadow tables in the consumer's database (idempotent)."""
    metadata.create_all(bind)


def utcnow() -> dt.datetime:
    """Naive UTC: what the DateTime columns hold on SQLite and PostgreSQL alike."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- enqueue (inside the consumer's transaction) --------------------------------------------


def _enqueue(
    conn: Connection, *, source_id: str, version: int, op: Op, payload: dict[str, Any] | None
) -> int:
    now = utcnow()
    outbox_id = conn.execute(
        shadow_outbox.insert()
        .values(
            source_id=source_id,
            version=version,
            op=op,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            enqueued_at=now,
        )
        .returning(shadow_outbox.c.id)
    ).scalar_one()
    return int(outbox_id)


def enqueue_create(conn: Connection, txn: ShadowTransaction) -> int:
    """Queue the creation of a transaction; call it on the connection of the consumer's write."""
    return _enqueue(
        conn, source_id=txn.source_id, version=txn.version, op="create", payload=txn.to_payload()
    )


def enqueue_update(conn: Connection, txn: ShadowTransaction) -> int:
    """Queue a new version of a transaction (the whole transaction as it now is)."""
    return _enqueue(
        conn, source_id=txn.source_id, version=txn.version, op="update", payload=txn.to_payload()
    )


def enqueue_delete(conn: Connection, *, source_id: str, version: int) -> int:
    """Queue the deletion of a transaction; `version` is the one the delete itself carries."""
    check_source(source_id, version)
    return _enqueue(conn, source_id=source_id, version=version, op="delete", payload=None)


# --- drain ----------------------------------------------------------------------------------


@dataclass
class DrainResult:
    queued: int = 0  # pending items of the sources this run looked at
    applied: int = 0  # sent to the ledger (or found already there) and recorded
    skipped: int = 0  # stale or duplicate versions: the ledger already reflects a newer one
    retry_later: int = 0  # transient failure: scheduled again with backoff
    dead: int = 0  # permanent failure: needs a person (see requeue_dead)
    waiting: int = 0  # held behind an earlier version of the same source that did not go
    errors: list[str] = field(default_factory=list)

    @property
    def drained(self) -> int:
        """Items this run finished (applied or skipped)."""
        return self.applied + self.skipped

    def to_json(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "drained": self.drained,
            "applied": self.applied,
            "skipped": self.skipped,
            "retry_later": self.retry_later,
            "dead": self.dead,
            "waiting": self.waiting,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class _Item:
    id: int
    source_id: str
    version: int
    op: Op
    payload: dict[str, Any] | None
    attempts: int
    next_attempt_at: dt.datetime


class _Transient(Exception):
    """The ledger could not be reached or failed (5xx) even after the client's retries."""


def drain(
    engine: Engine,
    client: ArusClient,
    config: ShadowConfig,
    *,
    now: Callable[[], dt.datetime] = utcnow,
    rng: Callable[[], float] = random.random,
) -> DrainResult:
    """Send due queued changes to the ledger; one attempt per item per run.

    Sources are taken in the order their oldest due item was queued, at most
    `config.max_items_per_run` items per run. Within a source, items go in version order and
    the first one that fails (or waits for its backoff) holds the later ones back until it
    goes, so an update is never applied before the create it replaces. A dead item does not
    hold anything back: the next version supersedes it. No database transaction is held open
    across a network call: the consumer's store is never locked by the ledger's latency.

    A wrong API key (401/403) or an account the ledger already has with another type stops the
    run with an exception and leaves every item as it was.
    """
    started = now()
    result = DrainResult()
    for group in _due_groups(engine, config, started):
        result.queued += len(group)
        for index, item in enumerate(group):
            if item.next_attempt_at > started:
                result.waiting += len(group) - index
                break
            outcome = _process(engine, client, config, item, started, rng, result)
            if outcome not in ("applied", "skipped"):
                result.waiting += len(group) - index - 1
                break
    log.info("shadow drain", extra={"shadow_drain": result.to_json()})
    return result


def _due_groups(engine: Engine, config: ShadowConfig, at: dt.datetime) -> list[list[_Item]]:
    """Pending items of the sources with something due, grouped per source in version order."""
    pending = shadow_outbox.c.status == "pending"
    first_due = (
        sa.select(shadow_outbox.c.source_id, sa.func.min(shadow_outbox.c.id).label("first_id"))
        .where(pending, shadow_outbox.c.next_attempt_at <= at)
        .group_by(shadow_outbox.c.source_id)
        .order_by(sa.func.min(shadow_outbox.c.id))
        .limit(config.max_items_per_run)
    )
    with engine.connect() as conn:
        sources = [row.source_id for row in conn.execute(first_due)]
        if not sources:
            return []
        rows = conn.execute(
            sa.select(shadow_outbox)
            .where(pending, shadow_outbox.c.source_id.in_(sources))
            .order_by(shadow_outbox.c.version, shadow_outbox.c.id)
            .limit(config.max_items_per_run)
        ).all()
    by_source: dict[str, list[_Item]] = {source: [] for source in sources}
    for row in rows:
        by_source[row.source_id].append(
            _Item(
                id=row.id,
                source_id=row.source_id,
                version=int(row.version),
                op=row.op,
                payload=_json_object(row.payload),
                attempts=int(row.attempts),
                next_attempt_at=row.next_attempt_at,
            )
        )
    return [group for group in by_source.values() if group]


def _json_object(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):  # drivers that hand JSON back as text
        value = json.loads(value)
    assert isinstance(value, dict), "a queued payload is a JSON object"
    return value


def _process(
    engine: Engine,
    client: ArusClient,
    config: ShadowConfig,
    item: _Item,
    started: dt.datetime,
    rng: Callable[[], float],
    result: DrainResult,
) -> str:
    state = _state(engine, item.source_id)
    if state is not None and item.version <= state.applied_version:
        _finish(engine, item, "skipped", f"stale: v{state.applied_version} already applied")
        result.skipped += 1
        return "skipped"
    try:
        if state is not None and state.live_version is not None:
            _reverse_live(engine, client, config, item.source_id, state.live_version)
        if item.op == "delete":
            _record_delete(engine, item)
        else:
            assert item.payload is not None, "create and update carry the transaction"
            txn = ShadowTransaction.from_payload(item.source_id, item.version, item.payload)
            _post_version(engine, client, config, item, txn)
    except _Transient as exc:
        delay_s = _backoff_s(config, item.attempts + 1, rng)
        _retry_later(engine, item, started + dt.timedelta(seconds=delay_s), str(exc))
        result.retry_later += 1
        result.errors.append(f"{item.source_id} v{item.version}: {exc}")
        return "retry_later"
    except (UnauthenticatedError, ForbiddenError) as exc:
        raise ShadowConfigError(f"the ledger refused the API key: {exc}") from exc
    except ArusApiError as exc:
        _finish(engine, item, "dead", str(exc))
        result.dead += 1
        result.errors.append(f"{item.source_id} v{item.version}: {exc}")
        log.error("shadow item dead", extra={"outbox_id": item.id, "error": str(exc)})
        return "dead"
    result.applied += 1
    return "applied"


def _backoff_s(config: ShadowConfig, attempts: int, rng: Callable[[], float]) -> float:
    """Exponential with equal jitter: half the step is fixed, half random, capped."""
    step_s = min(config.backoff_max_s, config.backoff_base_s * 2.0 ** (attempts - 1))
    return step_s / 2 + rng() * step_s / 2


@dataclass(frozen=True)
class _State:
    applied_version: int
    live_version: int | None
    deleted: bool


def _state(engine: Engine, source_id: str) -> _State | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(shadow_state).where(shadow_state.c.source_id == source_id)
        ).first()
    if row is None:
        return None
    return _State(
        applied_version=int(row.applied_version),
        live_version=None if row.live_version is None else int(row.live_version),
        deleted=bool(row.deleted),
    )


def _save_state(
    conn: Connection, source_id: str, *, applied_version: int, live: int | None, deleted: bool
) -> None:
    values = {
        "applied_version": applied_version,
        "live_version": live,
        "deleted": deleted,
        "updated_at": utcnow(),
    }
    updated = conn.execute(
        shadow_state.update().where(shadow_state.c.source_id == source_id).values(**values)
    ).rowcount
    if updated == 0:
        conn.execute(shadow_state.insert().values(source_id=source_id, **values))


def _ledger_call(call: Callable[[], T]) -> T:
    """Run one client call; transient failures (after the client's own retries) become
    _Transient, every other API error stays what it is."""
    try:
        return call()
    except ArusConnectionError as exc:
        raise _Transient(f"ledger unreachable: {exc}") from exc
    except ServerError as exc:
        raise _Transient(f"ledger error: {exc}") from exc


def _reverse_live(
    engine: Engine, client: ArusClient, config: ShadowConfig, source_id: str, live_version: int
) -> None:
    """Reverse the entry of the version that is live in the ledger, and record it."""
    with engine.connect() as conn:
        link = conn.execute(
            sa.select(shadow_links).where(
                shadow_links.c.source_id == source_id, shadow_links.c.version == live_version
            )
        ).one()

    def reverse(on: dt.date) -> str:
        return _ledger_call(
            lambda: client.reverse_entry(
                link.entry_id,
                idempotency_key=config.reverse_key(source_id, live_version),
                description=f"shadow {source_id} v{live_version} undone",
                effective_date=on,
            )
        ).id

    try:
        try:
            reversal_id: str | None = reverse(link.effective_date)
        except PeriodClosedError as closed:
            reversal_id = reverse(_first_open_date(closed))
    except IdempotencyConflictError:
        # This key reversed the entry already, dated into an open day a former run chose.
        reversal_id = _ledger_call(lambda: client.get_entry(link.entry_id)).reversed_by
    except AlreadyReversedError:
        # Reversed under another key (by a person, say): the ledger already says what we want.
        reversal_id = _ledger_call(lambda: client.get_entry(link.entry_id)).reversed_by
        log.warning("entry %s was already reversed outside the shadow", link.entry_id)
    with engine.begin() as conn:
        conn.execute(
            shadow_links.update()
            .where(shadow_links.c.source_id == source_id, shadow_links.c.version == live_version)
            .values(reversal_entry_id=reversal_id)
        )
        state = conn.execute(
            sa.select(shadow_state).where(shadow_state.c.source_id == source_id)
        ).one()
        _save_state(
            conn,
            source_id,
            applied_version=int(state.applied_version),
            live=None,
            deleted=bool(state.deleted),
        )


def _post_version(
    engine: Engine,
    client: ArusClient,
    config: ShadowConfig,
    item: _Item,
    txn: ShadowTransaction,
) -> None:
    debit, credit = chart_for(config, txn)
    _ensure_accounts(engine, client, config, (debit, credit))
    label = txn.description or txn.category
    metadata: dict[str, Any] = {
        "shadow_namespace": config.namespace,
        "source_id": txn.source_id,
        "version": txn.version,
        "kind": txn.kind,
        "category": txn.category,
    }

    def post(on: dt.date) -> Any:
        moved = {} if on == txn.occurred_on else {"original_effective_date": txn.occurred_on}
        return _ledger_call(
            lambda: client.post_entry(
                [
                    NewPosting(debit.code, "debit", txn.amount_minor),
                    NewPosting(credit.code, "credit", txn.amount_minor),
                ],
                idempotency_key=config.post_key(txn.source_id, txn.version),
                description=f"{txn.kind} {txn.source_id} v{txn.version}: {label}",
                effective_date=on,
                metadata={**metadata, **{k: v.isoformat() for k, v in moved.items()}},
            )
        )

    # A day chosen by an earlier run: the request it sent, so a retry replays it.
    posted_on = (
        dt.date.fromisoformat(item.payload["posted_on"])
        if item.payload and item.payload.get("posted_on")
        else txn.occurred_on
    )
    for _attempt in range(MAX_PERIOD_MOVES + 1):
        try:
            entry = post(posted_on)
            break
        except PeriodClosedError as closed:
            if _attempt == MAX_PERIOD_MOVES:
                raise
            posted_on = _first_open_date(closed)
            _remember_posted_on(engine, item, posted_on)
    with engine.begin() as conn:
        conn.execute(
            shadow_links.insert().values(
                source_id=txn.source_id,
                version=txn.version,
                entry_id=entry.id,
                effective_date=posted_on,
                reversal_entry_id=None,
                posted_at=utcnow(),
            )
        )
        _save_state(
            conn, txn.source_id, applied_version=txn.version, live=txn.version, deleted=False
        )
        _mark(conn, item, "done", None, entry_id=entry.id)


# A version is moved into the first open day at most this often in one run (each move follows
# a close that happened between two attempts).
MAX_PERIOD_MOVES = 3


def _first_open_date(closed: PeriodClosedError) -> dt.date:
    if closed.first_open_date is None:
        raise closed
    return dt.date.fromisoformat(closed.first_open_date)


def _remember_posted_on(engine: Engine, item: _Item, posted_on: dt.date) -> None:
    """Write the day chosen to the queued item before posting into it (write-ahead)."""
    assert item.payload is not None
    payload = {**item.payload, "posted_on": posted_on.isoformat()}
    with engine.begin() as conn:
        conn.execute(
            shadow_outbox.update().where(shadow_outbox.c.id == item.id).values(payload=payload)
        )


def _record_delete(engine: Engine, item: _Item) -> None:
    with engine.begin() as conn:
        _save_state(conn, item.source_id, applied_version=item.version, live=None, deleted=True)
        _mark(conn, item, "done", None)


def _ensure_accounts(
    engine: Engine, client: ArusClient, config: ShadowConfig, wanted: Iterable[ChartAccount]
) -> None:
    """Create the chart accounts this entry needs, once; adopt ones that already exist."""
    wanted = list(wanted)
    with engine.connect() as conn:
        known = set(
            conn.execute(
                sa.select(shadow_accounts.c.code).where(
                    shadow_accounts.c.code.in_([a.code for a in wanted])
                )
            ).scalars()
        )
    for account in wanted:
        if account.code in known:
            continue
        try:
            account_id = _create_account(client, config, account)
        except DuplicateAccountCodeError:
            existing = _ledger_call(partial(client.get_account, account.code))
            if (existing.type, existing.currency) != (account.type, config.currency) or (
                account.allow_negative and not existing.allow_negative
            ):
                raise ShadowConfigError(
                    f"the ledger already has {account.code} as a {existing.type} account in "
                    f"{existing.currency} (allow_negative={existing.allow_negative}); the "
                    f"shadow needs {account.type} in {config.currency}"
                ) from None
            account_id = existing.id
        with engine.begin() as conn:
            if not conn.execute(
                sa.select(shadow_accounts.c.code).where(shadow_accounts.c.code == account.code)
            ).first():
                conn.execute(
                    shadow_accounts.insert().values(
                        code=account.code, account_id=account_id, created_at=utcnow()
                    )
                )


def _create_account(client: ArusClient, config: ShadowConfig, account: ChartAccount) -> str:
    created = _ledger_call(
        partial(
            client.create_account,
            code=account.code,
            name=account.name,
            type=account.type,
            currency=config.currency,
            allow_negative=account.allow_negative,
            metadata={"shadow_namespace": config.namespace},
            idempotency_key=config.account_key(account.code),
        )
    )
    return created.id


def _mark(
    conn: Connection, item: _Item, status: str, error: str | None, *, entry_id: str | None = None
) -> None:
    assert status in STATUSES
    conn.execute(
        shadow_outbox.update()
        .where(shadow_outbox.c.id == item.id)
        .values(
            status=status,
            attempts=item.attempts + 1,
            last_error=error,
            entry_id=entry_id,
            finished_at=utcnow(),
        )
    )


def _finish(engine: Engine, item: _Item, status: str, error: str | None) -> None:
    with engine.begin() as conn:
        _mark(conn, item, status, error)


def _retry_later(engine: Engine, item: _Item, at: dt.datetime, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            shadow_outbox.update()
            .where(shadow_outbox.c.id == item.id)
            .values(attempts=item.attempts + 1, next_attempt_at=at, last_error=error)
        )


# --- operating the queue --------------------------------------------------------------------


def queue_status(bind: Engine | Connection) -> dict[str, int]:
    """How many queued items are in each status."""
    query = sa.select(shadow_outbox.c.status, sa.func.count()).group_by(shadow_outbox.c.status)
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = conn.execute(query).all()
    else:
        rows = bind.execute(query).all()
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({str(status): int(count) for status, count in rows})
    return counts


def requeue_dead(engine: Engine, *, source_id: str | None = None) -> int:
    """Put dead items back in the queue (after the cause is fixed); returns how many."""
    query = (
        shadow_outbox.update()
        .where(shadow_outbox.c.status == "dead")
        .values(status="pending", next_attempt_at=utcnow(), finished_at=None)
    )
    if source_id is not None:
        query = query.where(shadow_outbox.c.source_id == source_id)
    with engine.begin() as conn:
        return int(conn.execute(query).rowcount)


# --- consistency ----------------------------------------------------------------------------


def expected_balances(
    config: ShadowConfig, transactions: Iterable[ShadowTransaction]
) -> dict[str, int]:
    """The balances the ledger should show for the consumer's live transactions (each signed
    in its account's normal direction, as the ledger reports them)."""
    balances = {config.cash_code: 0, config.income_code: 0}
    for txn in transactions:
        debit, _credit = chart_for(config, txn)
        if txn.kind == "income":
            balances[config.cash_code] += txn.amount_minor
            balances[config.income_code] += txn.amount_minor
        else:
            balances[config.cash_code] -= txn.amount_minor
            balances[debit.code] = balances.get(debit.code, 0) + txn.amount_minor
    return balances


def consistency_report(
    client: ArusClient,
    config: ShadowConfig,
    expected: Mapping[str, int],
    *,
    queue: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Compare the consumer's expected balances with the ledger's, account by account.

    The ledger side is one trial balance (one snapshot, so accounts cannot disagree with each
    other mid-read), restricted to this namespace's accounts. An account the ledger has and the
    consumer does not expect is expected at 0; an account the consumer expects and the ledger
    lacks counts as 0 there. Returns `{"status": "zero_drift", ...}` or `{"status": "drift",
    "differences": [...]}`. Pass `queue` (queue_status) so a reader can tell lag (items still
    pending) from real drift.
    """
    trial = client.trial_balance()  # ArusConnectionError or ArusApiError reach the caller
    prefix = f"{config.namespace}:"
    ledger = {a.account_code: a for a in trial.accounts if a.account_code.startswith(prefix)}
    accounts: list[dict[str, Any]] = []
    differences: list[dict[str, Any]] = []
    for code in sorted(set(expected) | set(ledger)):
        want = int(expected.get(code, 0))
        line = ledger.get(code)
        got = 0 if line is None else line.balance
        accounts.append({"account_code": code, "expected": want, "ledger": got})
        if line is not None and line.currency != config.currency:
            differences.append(
                {"account_code": code, "reason": "currency", "expected": config.currency,
                 "ledger": line.currency}
            )  # fmt: skip
        if got != want:
            differences.append(
                {"account_code": code, "reason": "balance", "expected": want, "ledger": got,
                 "ledger_minus_expected": got - want}
            )  # fmt: skip
    for drifted in trial.drift:
        if str(drifted.get("account_code", "")).startswith(prefix):
            differences.append({"reason": "ledger_drift", **drifted})
    report: dict[str, Any] = {
        "status": "drift" if differences else "zero_drift",
        "namespace": config.namespace,
        "currency": config.currency,
        "accounts": accounts,
        "differences": differences,
    }
    if queue is not None:
        report["queue"] = dict(queue)
        if differences and (queue.get("pending", 0) or queue.get("dead", 0)):
            report["note"] = "items are still queued or dead: drain (or requeue) before judging"
    return report
