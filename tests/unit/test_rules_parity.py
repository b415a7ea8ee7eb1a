"""Each rule once: where SQL, the table constraints or the consumer side restate a rule of
`arus.rules`, these tests read both and fail when they disagree (issue 9)."""

from __future__ import annotations

import re
import typing

from arus import errors, rules
from arus.ledger.engine_sql import ENGINE_FILES, SQL_DIR
from arus_client import client as arus_client
from arus_client import reference_consumer

from tests.support.ledgers import REPO

ENGINE = "\n".join((SQL_DIR / name).read_text() for name in ENGINE_FILES)
TABLES = (REPO / "shared/arus/admin/migrations/versions/0001_ledger_core.py").read_text()


def test_every_hint_the_engine_raises_is_an_api_error_or_a_named_guard():
    literal = set(re.findall(r"HINT = '([a-z_]+)'", ENGINE))
    # Items fail with a code the loop carries: every code assigned to it, or built into a result.
    refused = set(re.findall(r"'([a-z_]+)' AS code", ENGINE))
    built = set(re.findall(r"json_build_object\('code', '([a-z_]+)'", ENGINE))
    hints = literal | refused | built
    assert {"unauthenticated", "insufficient_funds", "append_only"} <= hints, hints
    unknown = hints - set(errors.BY_CODE) - rules.GUARD_HINTS
    assert unknown == set(), f"the engine raises codes Python does not map (a 500): {unknown}"
    # Dynamic HINTs re-raise one of those codes and nothing else.
    dynamic = {h.strip() for h in re.findall(r"HINT = (?!')([^,;\n]+)", ENGINE)}
    assert dynamic == {"v_refusal.code", "results[v_known_error] -> 'error' ->> 'code'"}, dynamic


def test_python_error_classes_are_the_wire_contract():
    classes = {cls.code: cls.status for cls in errors.BY_CODE.values()}
    classes[errors.MethodNotAllowed.code] = errors.MethodNotAllowed.status
    classes[errors.ArusError.code] = errors.ArusError.status
    assert classes == rules.ERROR_STATUS


def test_the_client_knows_every_error_code():
    codes = {
        cls.CODE
        for cls in vars(arus_client).values()
        if isinstance(cls, type) and issubclass(cls, arus_client.ArusApiError)
        and getattr(cls, "CODE", "")
    }  # fmt: skip
    assert codes == set(rules.ERROR_STATUS), codes ^ set(rules.ERROR_STATUS)


def test_posting_and_batch_limits_agree_with_the_engine():
    lines = f"jsonb_array_length(p_lines) BETWEEN {rules.MIN_POSTINGS} AND {rules.MAX_POSTINGS}"
    assert lines in ENGINE
    assert f"jsonb_array_length(p_items) NOT BETWEEN 1 AND {rules.MAX_BATCH_ITEMS}" in ENGINE
    assert f"v_count < {rules.MIN_POSTINGS} OR v_count > {rules.MAX_POSTINGS}" in ENGINE
    assert f"CHECK (position BETWEEN 1 AND {rules.MAX_POSTINGS})" in TABLES
    assert f"length(description) <= {rules.MAX_DESCRIPTION_CHARS}" in TABLES
    assert f"length(name) BETWEEN 1 AND {rules.MAX_NAME_CHARS}" in TABLES
    assert f"length(key) BETWEEN 1 AND {rules.MAX_IDEMPOTENCY_KEY_CHARS}" in TABLES


def test_int64_bounds_agree_with_the_engine():
    assert f"after NOT BETWEEN {rules.INT64_MIN} AND {rules.INT64_MAX}" in ENGINE
    assert f"side_after > {rules.INT64_MAX}" in ENGINE
    assert f"debits > {2 * rules.INT64_MAX}" in ENGINE  # a total of two int64 halves
    assert rules.INT64_MAX == 2**63 - 1 and rules.INT64_MIN == -(2**63)


def test_account_types_codes_and_normal_sides_agree_everywhere():
    types = ", ".join(f"'{t}'" for t in rules.ACCOUNT_TYPES)
    assert f"CHECK (type IN ({types}))" in TABLES
    assert f"CHECK (code ~ '^{rules.ACCOUNT_CODE_PATTERN}$')" in TABLES
    debit = ", ".join(f"'{t}'" for t in rules.ACCOUNT_TYPES if t in rules.DEBIT_NORMAL_TYPES)
    assert f"CASE WHEN p_type IN ({debit}) THEN 'debit' ELSE 'credit' END" in ENGINE
    assert reference_consumer.DEBIT_NORMAL_TYPES == rules.DEBIT_NORMAL_TYPES
    assert typing.get_args(arus_client.AccountType) == rules.ACCOUNT_TYPES
    assert {rules.normal_side(t) for t in rules.ACCOUNT_TYPES} == set(rules.DIRECTIONS)


def test_a_lost_database_socket_is_503_and_a_bug_stays_a_500():
    """What the SIGKILL test saw once in a few runs: pg8000 raising the socket's own
    ConnectionResetError mid-answer. It is the database going away, not a bug."""
    assert isinstance(errors.unavailable(ConnectionResetError(104, "reset")),
                      errors.ServiceUnavailable)  # fmt: skip
    assert isinstance(errors.unavailable(BrokenPipeError()), errors.ServiceUnavailable)
    assert errors.unavailable(ValueError("a bug")) is None
    assert errors.unavailable(KeyError("a bug")) is None
