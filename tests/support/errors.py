"""What an error says: an exception chain's messages, and an HTTP error answer's code."""

from __future__ import annotations


def exception_chain(exc: BaseException) -> str:
    """Every message in the chain: pg8000 may report a server error as "network error" when
    the server hangs up before pg8000 sends its Terminate, with the real error as context."""
    messages, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        messages.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(messages)


def error_code(response) -> str:
    """The code of an API error answer, which must be `{"error": {...}}` and nothing else."""
    body = response.get_json()
    assert set(body) == {"error"}, body
    return str(body["error"]["code"])
