"""No input answers 5xx (SPEC §3: "a 500 is always a bug"; §3.4: bad input is a 4xx wherever
it sits).

Every operation of the app's own OpenAPI document, so a route added later is covered without
touching this file, is sent requests through the WSGI app, against the real PostgreSQL, with a
real write key. One target per test: a field of the request body (at any depth: postings[0].
amount, entries[0].idempotency_key), the whole body, or a path, query or header parameter (plus
a `metadata.<key>` filter and a query parameter of any name, which every route must survive).
The target gets arbitrary input and the rest of the request stays valid, so the input reaches
as deep as the route lets it:
- a body field: any JSON value (null, booleans, integers past int64 and past Python's digit
  limit, floats, text with NUL and lone surrogates, lists and objects, nested);
- the body: any JSON value, any bytes (invalid UTF-8, nesting past the parser's limit);
- a path or query value: any text (NUL, lone surrogates sent as the invalid UTF-8 bytes a
  client could send) or any bytes, percent-encoded or raw.
Every answer is below 500, and every 4xx has the error shape `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

import hypothesis
import pytest
from arus.ledger.commands import today_utc
from arus.rules import INT64_MAX, INT64_MIN
from arus.web import openapi
from arus.web.app import create_app
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.support.ledgers import Ledger, new_ledger

EXAMPLES_PER_TARGET = 20  # x ~120 targets: about 2,400 requests, about 15 s
STATUSES: Counter[int] = Counter()  # every answer of the module, for the summary line
OPERATOR_TOKEN = "o" * 32  # the job routes are served, but this key is never sent (see below)

DOCUMENT = openapi.document()
SCHEMAS = copy.deepcopy(DOCUMENT["components"]["schemas"])
# The document leaves a batch item open ({"type": "object"}); its shape is BatchItem.
_ENTRIES = SCHEMAS["Batch"]["properties"]["entries"]
if not {"$ref", "properties"} & set(_ENTRIES["items"]):
    _ENTRIES["items"] = {"$ref": "#/components/schemas/BatchItem"}

# --- arbitrary input ----------------------------------------------------------------------

# Text: any code point, lone surrogates and NUL included, with the characters that mean
# something to a URL, to JSON or to PostgreSQL drawn often.
TEXT = st.text(
    st.characters(exclude_categories=()) | st.sampled_from("\x00\ud800\udfff\ufffd%&=+/?#.\\\"'"),
    max_size=12,
)
# Numbers JSON can carry and Python cannot parse back: written into the body text as is.
RAW_NUMBERS = ("9" * 5000, "-" + "9" * 5000, "1e400", "-1e400", "1" + "0" * 400 + ".5")


@dataclass(frozen=True)
class RawNumber:
    text: str


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 10**40])
    | st.floats()
    | st.sampled_from(RAW_NUMBERS).map(RawNumber)
    | TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
MISSING = object()  # the field left out
FIELD_VALUES = JSON_VALUES | st.just(MISSING)
# Text as a client sends it: UTF-8, a lone surrogate as the (invalid) bytes it encodes to.
URL_BYTES = TEXT.map(lambda text: text.encode("utf-8", "surrogatepass")) | st.binary(max_size=12)
DEEP = 100_000


def encode_body(body: Any) -> bytes:
    """JSON text of `body`; a RawNumber goes in as its digits (json.dumps cannot write them)."""
    raws: dict[str, str] = {}

    def default(value: Any) -> Any:
        if isinstance(value, RawNumber):
            marker = f"raw-number-{uuid.uuid4().hex}"
            raws[marker] = value.text
            return marker
        raise TypeError(type(value).__name__)

    text = json.dumps(body, default=default)
    for marker, raw in raws.items():
        text = text.replace(f'"{marker}"', raw)
    return text.encode()


RAW_BODIES = st.binary(max_size=40) | st.sampled_from(
    [b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP, b'"\\ud800"', b"\xff{}"]
)

# --- the operations and their targets, from the document ---------------------------------


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref followed and its allOf merged (properties and required)."""
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" not in schema:
        return schema
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for part in map(resolve, schema["allOf"]):
        merged["properties"] = {**part.get("properties", {}), **merged.get("properties", {})}
        merged["required"] = sorted({*part.get("required", []), *merged.get("required", [])})
    return merged


def field_paths(schema: dict[str, Any], prefix: tuple[str | int, ...] = ()) -> list[Any]:
    """Every field of a body, at every depth: ("postings", 0, "amount")."""
    schema = resolve(schema)
    paths: list[Any] = []
    for name, sub in schema.get("properties", {}).items():
        paths += [(*prefix, name), *field_paths(sub, (*prefix, name))]
    if "items" in schema:
        paths += [(*prefix, 0), *field_paths(schema["items"], (*prefix, 0))]
    return paths


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return str(self.spec.get("operationId", f"{self.method} {self.path}"))

    @property
    def body_schema(self) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        return content.get("application/json", {}).get("schema")

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    def targets(self) -> list[str]:
        found = [f"path:{p['name']}" for p in self.parameters("path")]
        found += [f"header:{p['name']}" for p in self.parameters("header")]
        if self.spec.get("security", DOCUMENT["security"]):
            found.append("header:Authorization")
        documented = [p["name"] for p in self.parameters("query")]
        found += [f"query:{name}" for name in (*documented, "metadata.<key>", "<any name>")]
        if self.body_schema is not None:
            found += ["body", "body-bytes"]
            found += [f"body:{render(path)}" for path in field_paths(self.body_schema)]
        return found


def render(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


OPERATIONS = [
    Operation(method.upper(), path, spec)
    for path, item in DOCUMENT["paths"].items()
    for method, spec in item.items()
]
CASES = [(operation, target) for operation in OPERATIONS for target in operation.targets()]

# --- valid requests, from the schemas -----------------------------------------------------

_fresh = itertools.count()
BALANCED_ENTRY = {
    "postings": [
        {"account": "cash", "direction": "debit", "amount": 1},
        {"account": "equity", "direction": "credit", "amount": 1},
    ]
}
_PATTERNS = {"^[A-Z]{3}$": "USD"}  # patterns a fresh token does not match


def example(schema: dict[str, Any]) -> Any:
    """A valid value of `schema` (fresh codes and keys each time), or the closest the schema
    can say: a balanced entry between the fixture's accounts stands in for NewEntry."""
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name == "NewEntry":
            return copy.deepcopy(BALANCED_ENTRY)
        schema = SCHEMAS[name]
    if "allOf" in schema:
        value: dict[str, Any] = {}
        for part in schema["allOf"]:
            value.update(example(part))
        own = schema.get("properties", {})
        return {**value, **{name: example(own[name]) for name in schema.get("required", [])
                            if name in own}}  # fmt: skip
    schema = resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema:
        return example(schema["oneOf"][0])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example(properties[name]) for name in schema.get("required", [])}
    if kind == "array":
        return [example(schema["items"]) for _ in range(max(schema.get("minItems", 1), 1))]
    if kind == "integer":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if schema.get("format") == "date":
        return today_utc().isoformat()
    if schema.get("format") == "date-time":
        return (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _PATTERNS.get(schema.get("pattern", ""), f"f{next(_fresh)}")


def set_at(body: Any, path: tuple[str | int, ...], value: Any) -> Any:
    """`body` with the field at `path` set to `value` (left out if MISSING)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) and body else [{}]
        if not rest and value is MISSING:
            return items[1:]
        items[0] = set_at(items[0], rest, value)
        return items
    fields = dict(body) if isinstance(body, dict) else {}
    if rest:
        fields[head] = set_at(fields.get(head, {}), rest, value)
    elif value is MISSING:
        fields.pop(head, None)
    else:
        fields[head] = value
    return fields


@dataclass
class Request:
    """One request as the server sees it: PATH_INFO and QUERY_STRING are the raw bytes."""

    method: str
    path: bytes
    query: list[tuple[bytes, bytes, bool]] = field(default_factory=list)  # name, value, raw?
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def query_string(self) -> bytes:
        def part(text: bytes, raw: bool) -> bytes:
            return text if raw else quote_from_bytes(text, safe="").encode()

        return b"&".join(part(n, raw) + b"=" + part(v, raw) for n, v, raw in self.query)


@dataclass(frozen=True)
class Books:
    """The fuzzed ledger: two accounts and a posted and a pending entry, for path ids."""

    ledger: Ledger
    client: Any
    entry_id: str
    pending_id: str


@pytest.fixture(scope="module")
def books(app_settings: Any, settings: Any) -> Books:
    import dataclasses

    app = create_app(dataclasses.replace(app_settings, operator_token=OPERATOR_TOKEN))
    client = app.test_client()
    ledger = new_ledger(settings, "no-5xx")
    for code, type_ in (("cash", "asset"), ("equity", "equity")):
        response = client.post("/v1/accounts", headers=ledger.write, json={
            "code": code, "name": code, "type": type_, "currency": "USD",
            "allow_negative": True})  # fmt: skip
        assert response.status_code == 201, response.get_json()
    ids = []
    for status in ("posted", "pending"):
        headers = {**ledger.write, "Idempotency-Key": uuid.uuid4().hex}
        response = client.post("/v1/entries", headers=headers,
                               json={**BALANCED_ENTRY, "status": status})  # fmt: skip
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return Books(ledger, client, *ids)


def base_request(operation: Operation, books: Books) -> tuple[Request, dict[str, bytes]]:
    """A valid request for `operation`, and its path parameters (raw bytes, by name)."""
    params = {}
    for parameter in operation.parameters("path"):
        name = parameter["name"]
        if parameter["schema"].get("format") == "uuid":
            pending = operation.path.endswith(("/post", "/void"))
            params[name] = (books.pending_id if pending else books.entry_id).encode()
        else:
            params[name] = b"cash"
    # The job routes get the API key, not the operator token: run with it, they would close
    # days of every ledger in the shared test database. They answer 401 before their body.
    headers = {"Authorization": f"Bearer {books.ledger.write_key}"}
    for parameter in operation.parameters("header"):
        headers[parameter["name"]] = example(parameter["schema"])
    request = Request(operation.method, b"", headers=headers)
    for parameter in operation.parameters("query"):
        if parameter.get("required"):
            request.query.append((parameter["name"].encode(),
                                  str(example(parameter["schema"])).encode(), False))  # fmt: skip
    if operation.body_schema is not None:
        request.body = encode_body(example(operation.body_schema))
    return request, params


def fill_path(template: str, params: dict[str, bytes]) -> bytes:
    path = template.encode()
    for name, value in params.items():
        path = path.replace(b"{" + name.encode() + b"}", value)
    return path


@st.composite
def requests(draw: st.DrawFn, operation: Operation, target: str, books: Books) -> Request:
    request, params = base_request(operation, books)
    where, _, name = target.partition(":")
    if where == "path":
        params[name] = draw(URL_BYTES)
    elif where == "header":
        # What a header can carry at all: latin-1 text, no line breaks.
        request.headers[name] = draw(st.text(st.characters(max_codepoint=255,
                                                           exclude_characters="\r\n")))  # fmt: skip
    elif where == "query":
        if name == "metadata.<key>":
            key = draw(st.sampled_from([b"order", b"team"]) | URL_BYTES)
            query_name = b"metadata." + key
        elif name == "<any name>":
            query_name = draw(URL_BYTES)
        else:
            query_name = name.encode()
        request.query = [q for q in request.query if q[0] != query_name]
        request.query.append((query_name, draw(URL_BYTES), draw(st.booleans())))
    elif target == "body":
        request.body = encode_body(draw(JSON_VALUES))
    elif target == "body-bytes":
        request.body = draw(RAW_BODIES)
    else:
        assert operation.body_schema is not None
        body = json.loads(request.body or b"{}")
        path = tuple(int(p) if p.isdigit() else p for p in re.findall(r"\w+", name))
        request.body = encode_body(set_at(body, path, draw(FIELD_VALUES)))
    request.path = fill_path(operation.path, params)
    return request


def send(books: Books, request: Request) -> Any:
    headers = dict(request.headers)
    if request.body is not None:
        headers["Content-Type"] = "application/json"
    return books.client.open(
        "/", method=request.method, headers=headers, data=request.body,
        environ_overrides={"PATH_INFO": request.path.decode("latin-1"),
                           "QUERY_STRING": request.query_string().decode("latin-1")},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "target"), CASES, ids=[f"{op.label}-{target}" for op, target in CASES]
)
def test_no_input_answers_a_server_error(books: Books, operation: Operation, target: str) -> None:
    # Reproducible in CI: the suite's "ci" profile derandomizes (tests/conftest.py).
    @hypothesis.settings(max_examples=EXAMPLES_PER_TARGET, deadline=None,
                         suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(request=requests(operation, target, books))
    def run(request: Request) -> None:
        response = send(books, request)
        STATUSES[response.status_code] += 1
        sent = f"{request.method} {request.path!r}?{request.query_string()!r} {request.body!r:.300}"
        assert response.status_code < 500, f"{response.status_code} for {sent}: {response.data!r}"
        if response.status_code >= 400:
            error = (response.get_json(silent=True) or {}).get("error")
            assert isinstance(error, dict), f"{response.status_code} without error body: {sent}"
            assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str)

    run()


def test_every_operation_was_covered():
    assert len(OPERATIONS) >= 18 and len(CASES) >= 100, (len(OPERATIONS), len(CASES))
    total = sum(STATUSES.values())
    if not total:
        pytest.skip("run with the cases above")
    assert total >= EXAMPLES_PER_TARGET * len(CASES) // 2, f"sent {total} requests"
    print(f"\nNO-5XX operations={len(OPERATIONS)} targets={len(CASES)} requests={total} "
          f"statuses={dict(sorted(STATUSES.items()))}")  # fmt: skip
