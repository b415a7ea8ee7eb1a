"""Request and response bodies: strict JSON in, compact JSON out; and the request's URL text,
held to what the ledger can store as text."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Response, request

from arus.errors import InvalidJson, PayloadTooLarge, UnsupportedMediaType, ValidationError

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
JSON_MIMETYPE = "application/json"


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        mimetype=JSON_MIMETYPE,
        headers=headers,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


MAX_JSON_DEPTH = 32


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def check_json_values(value: object, *, depth: int = 0, path: str = "body") -> None:
    """Refuse what PostgreSQL or the encoder cannot store: deep nesting, NUL, lone surrogates."""
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"{path} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ValidationError(f"{path} contains a NUL character or a lone surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_values(key, depth=depth + 1, path=f"{path} key")
            check_json_values(item, depth=depth + 1, path=f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json_values(item, depth=depth + 1, path=f"{path}[{index}]")


def read_json_body(*, required: bool, max_bytes: int | None = None) -> object:
    """The request's JSON body, strictly: JSON content type, size limit, no NaN or infinite
    numbers, no duplicate keys, bounded nesting, only text PostgreSQL can store."""
    # A body sent without Content-Length (chunked) is bounded by the stream only at
    # MAX_CONTENT_LENGTH, which is one byte past every route's limit (create_app): a body over
    # the limit is then always seen as over it here, never read cut short and parsed.
    raw = request.get_data(cache=True)
    limit = max_bytes if max_bytes is not None else request.max_content_length
    if limit is not None and len(raw) > limit:
        raise PayloadTooLarge(f"the request body exceeds the size limit of {limit} bytes")
    if not raw and not required:
        return {}
    if request.mimetype != JSON_MIMETYPE:
        raise UnsupportedMediaType("send the body as Content-Type: application/json")
    if not raw:
        raise InvalidJson("the request body is empty; a JSON object is required")
    try:
        body = json.loads(
            raw,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_no_duplicate_keys,
        )
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"the request body is not valid JSON: {exc}") from None
    check_json_values(body)
    return body


def _text_problem(raw: bytes) -> str | None:
    """Why `raw` is not text the ledger can store (as "is not valid UTF-8"), or None."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return "is not valid UTF-8"
    return "contains a NUL character" if "\x00" in text else None


def check_url_text(path_params: Mapping[str, str]) -> None:
    """Refuse a path or query value that is not text the ledger can store (SPEC §3.4): bytes
    that are not UTF-8 (raw or percent-encoded, a lone surrogate among them), or a NUL; the
    message names the parameter. Run it before a route reads `request.args`, which fails on
    raw bytes that are not UTF-8 (and keeps percent-encoded ones as written).

    `path_params` are the route's values as routing decoded them (bytes that are not UTF-8
    replaced): they name the path's segments.
    """
    # PATH_INFO and QUERY_STRING carry the request's bytes, one character each (PEP 3333).
    for segment in request.environ.get("PATH_INFO", "").encode("latin-1").split(b"/"):
        problem = _text_problem(segment)
        if problem is not None:
            shown = segment.decode(errors="replace")
            name = next((n for n, value in path_params.items() if value == shown), None)
            where = "the path" if name is None else f"path parameter {name}"
            raise ValidationError(f"{where} {problem}")
    for pair in request.query_string.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name_bytes, value_bytes = (unquote_to_bytes(raw.replace(b"+", b" "))
                                   for raw in (raw_name, raw_value))  # fmt: skip
        problem = _text_problem(name_bytes)
        if problem is not None:
            shown = name_bytes.decode(errors="backslashreplace").replace("\x00", "\\x00")
            raise ValidationError(f"a query parameter's name {problem}: {shown}")
        problem = _text_problem(value_bytes)
        if problem is not None:
            raise ValidationError(f"query parameter {name_bytes.decode()} {problem}")
