"""The building blocks of the request models (`commands`): a field type's refusal in the ledger's
own words, one value checked against a field type, and a model's refusal as the one message the
API answers with (the field's path first: `postings[1].amount must be ...`).

A field type is an `Annotated` pydantic type: its constraints are both what is enforced and what
the OpenAPI document says (`web/openapi.py` generates the schemas from the same models).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidatorFunctionWrapHandler, WrapValidator
from pydantic import ValidationError as ModelError
from pydantic_core import PydanticCustomError

from arus.errors import ArusError, ValidationError

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """A request body: strict (no coercion: `"5"`, `5.0` and `true` are never the integer 5),
    closed (an unknown field is refused) and immutable once validated."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def refuse(message: str) -> NoReturn:
    """Refuse the value being validated; the message follows the field's path."""
    # The text goes in as context, never as the template: a value quoted in it may hold braces.
    raise PydanticCustomError("arus", "{message}", {"message": message})


def says(message: str) -> WrapValidator:
    """Any refusal of this field type is `message` (for types whose own words are unclear)."""

    def validate(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ModelError:
            refuse(message)

    return WrapValidator(validate)


def validated(model: type[M], body: object) -> M:
    """The body as `model`, or the ValidationError the API answers with."""
    try:
        return model.model_validate(body)
    except ModelError as exc:
        raise refusal(exc) from None


def check(type_: Any, value: object, *, field: str) -> Any:
    """One value (a query parameter, a path segment) held to a field type."""
    try:
        return _adapter(type_).validate_python(value, strict=True)
    except ModelError as exc:
        raise refusal(exc, path=field) from None


@functools.cache
def _adapter(type_: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_)


def refusal(exc: ModelError, *, path: str = "") -> ArusError:
    """Pydantic's list of errors as one message, as clear as a person would write it: the
    unknown fields, else the missing ones, else the first field's refusal."""
    errors = exc.errors(include_url=False)
    for kind, what in (("extra_forbidden", "unknown"), ("missing", "missing required")):
        named = [error for error in errors if error["type"] == kind]
        if named:
            parent = named[0]["loc"][:-1]
            fields = sorted(str(e["loc"][-1]) for e in named if e["loc"][:-1] == parent)
            where = _path(parent, path)
            return ValidationError(f"{where + ': ' if where else ''}{what} field(s): "
                                   f"{', '.join(fields)}")  # fmt: skip
    error = errors[0]
    where = _path(error["loc"], path)
    return ValidationError(f"{where} {_words(error)}" if where else _words(error))


def _path(loc: Sequence[int | str], prefix: str = "") -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
}


def _words(error: Any) -> str:
    """The message of one error, in the ledger's words where pydantic's would read oddly."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "arus":
        return str(ctx["message"])
    if kind in _TYPE_WORDS:
        return "the request body must be a JSON object" if not error["loc"] and kind in (
            "dict_type", "model_type") else _TYPE_WORDS[kind]  # fmt: skip
    if kind in ("too_short", "too_long"):
        bound = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        least = "least" if kind == "too_short" else "most"
        return f"must have at {least} {bound} item{'' if bound == 1 else 's'}"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    return str(error["msg"])
