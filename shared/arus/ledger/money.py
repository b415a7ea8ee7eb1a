"""Money rules: integer minor units within int64, ISO-4217-shaped currency codes (SPEC §2)."""

from __future__ import annotations

import re

from arus.errors import ValidationError
from arus.rules import INT64_MAX, INT64_MIN

__all__ = ["INT64_MAX", "INT64_MIN", "parse_amount_minor", "parse_currency"]

_CURRENCY = re.compile(r"[A-Z]{3}")


def parse_amount_minor(value: object, *, field: str) -> int:
    """A positive amount in minor units. Floats, strings and booleans are refused, never coerced."""
    # bool is a subclass of int: `true` must not become 1 cent.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{field} must be an integer number of minor units, not {type(value).__name__}"
        )
    if not 1 <= value <= INT64_MAX:
        raise ValidationError(f"{field} must be between 1 and {INT64_MAX}")
    return value


def parse_currency(value: object, *, field: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise ValidationError(f"{field} must be three upper-case letters (ISO 4217), e.g. USD")
    return value
