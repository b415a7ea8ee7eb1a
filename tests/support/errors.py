"""What an exception chain says, for tests that match on a message buried in it."""

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
