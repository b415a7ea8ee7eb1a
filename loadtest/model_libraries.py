"""Request validation on the POST path, three ways (issue 19 item 1): the hand-written commands
of today, a pydantic v2 model and a msgspec Struct, each from the raw body to a validated entry.

    pip install msgspec   # not a dependency of Arus: measured before it may become one
    python loadtest/model_libraries.py [--rounds 5]

Both libraries are asked for what the commands enforce: integers that are not floats,
booleans or strings, unknown fields refused, a closed set of directions and statuses, 2..100
postings. Neither refuses duplicate keys or NUL in text by itself, so the strict JSON layer
(web/bodies.py) stays in front of either, and the rows with it are the comparable ones. Prints
the microseconds per body of one entry (the best round).
"""

from __future__ import annotations

import argparse
import json
import timeit
from typing import Annotated, Any, Literal

import msgspec
import pydantic
from arus.ledger import commands
from arus.web import bodies

INT64_MAX = 2**63 - 1
Direction = Literal["debit", "credit"]


class PydanticPosting(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    account: Annotated[str, pydantic.Field(min_length=1, max_length=64)]
    direction: Direction
    amount: Annotated[int, pydantic.Field(gt=0, le=INT64_MAX)]
    currency: str | None = None
    expected_version: Annotated[int, pydantic.Field(ge=0, le=INT64_MAX)] | None = None


class PydanticEntry(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    postings: Annotated[list[PydanticPosting], pydantic.Field(min_length=2, max_length=100)]
    description: str | None = None
    effective_date: str | None = None
    metadata: dict[str, Any] = {}
    status: Literal["posted", "pending"] = "posted"
    expires_at: str | None = None


class MsgspecPosting(msgspec.Struct, forbid_unknown_fields=True):
    account: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    direction: Direction
    amount: Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
    currency: str | None = None
    expected_version: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] | None = None


class MsgspecEntry(msgspec.Struct, forbid_unknown_fields=True):
    postings: Annotated[list[MsgspecPosting], msgspec.Meta(min_length=2, max_length=100)]
    description: str | None = None
    effective_date: str | None = None
    metadata: dict[str, Any] = {}
    status: Literal["posted", "pending"] = "posted"
    expires_at: str | None = None


ENTRY = {
    "description": "card payment 4711",
    "effective_date": "2026-12-04",
    "metadata": {"order": "A-1", "channel": "web"},
    "postings": [
        {"account": "wallet:ana", "direction": "debit", "amount": 2500},
        {"account": "merchant:shop", "direction": "credit", "amount": 2500},
    ],
}
MSGSPEC_DECODER = msgspec.json.Decoder(MsgspecEntry)


def strict_json(raw: bytes) -> Any:
    """web/bodies.py's parse, without the Flask request around it."""
    body = json.loads(raw, parse_constant=bodies._reject_constant,
                      parse_float=bodies._finite_float,
                      object_pairs_hook=bodies._no_duplicate_keys)  # fmt: skip
    bodies.check_json_values(body)
    return body


WAYS = {
    "commands (today): strict JSON + parse_new_entry": lambda raw: commands.parse_new_entry(
        strict_json(raw)
    ),
    "pydantic: strict JSON + model_validate": lambda raw: PydanticEntry.model_validate(
        strict_json(raw)
    ),
    "msgspec: strict JSON + convert": lambda raw: msgspec.convert(
        strict_json(raw), MsgspecEntry, strict=True
    ),
    "pydantic alone: model_validate_json (no duplicate-key/NUL checks)": (
        PydanticEntry.model_validate_json
    ),
    "msgspec alone: Decoder.decode (no duplicate-key/NUL checks)": MSGSPEC_DECODER.decode,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    one = json.dumps(ENTRY).encode()
    for raw in (one, b'{"postings": [{"account": "a", "direction": "debit", "amount": 1.0},'
                     b' {"account": "b", "direction": "credit", "amount": true}]}'):  # fmt: skip
        for name, way in WAYS.items():
            try:
                way(raw)
                accepted = True
            except (commands.ValidationError, pydantic.ValidationError, msgspec.ValidationError):
                accepted = False
            assert accepted == (raw is one), f"{name} judged {raw!r} wrongly"
    print("µs per body (best of", args.rounds, "rounds)")
    for name, way in WAYS.items():
        number = 20_000
        best = min(timeit.repeat(lambda way=way: way(one), number=number, repeat=args.rounds))
        print(f"{name:70} {best / number * 1e6:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
