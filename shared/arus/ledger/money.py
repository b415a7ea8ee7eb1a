"""Money rules: integer minor units within int64, ISO-4217-shaped currency codes (SPEC §2)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from arus.ledger.fields import check, says
from arus.rules import INT64_MAX, INT64_MIN

__all__ = ["INT64_MAX", "INT64_MIN", "Amount", "Currency", "parse_amount_minor", "parse_currency"]

# A positive amount in minor units. Strict: floats, strings and booleans are refused, never
# coerced (`true` must not become 1 cent, nor 1.5 become 1).
Amount = Annotated[
    int,
    Field(ge=1, le=INT64_MAX),
    says(f"must be an integer number of minor units between 1 and {INT64_MAX}"),
]
Currency = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$"),
    says("must be three upper-case letters (ISO 4217), e.g. USD"),
]


def parse_amount_minor(value: object, *, field: str) -> int:
    return int(check(Amount, value, field=field))


def parse_currency(value: object, *, field: str) -> str:
    return str(check(Currency, value, field=field))
