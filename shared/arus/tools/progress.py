"""Progress for long command-line work (`arus close`, `verify`, `prune`): a bar or a spinner on
standard error when it is a terminal, nothing otherwise, so that what a job prints on standard
output (JSON) and logs stays exactly as it is in scripts and on Google Cloud."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def _terminal() -> bool:
    return sys.stderr.isatty()


def track(items: Sequence[T], description: str) -> Iterator[T]:
    """Yields `items`, with a progress bar over them on a terminal."""
    if not _terminal():
        yield from items
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, console=Console(stderr=True),
                          transient=True)  # fmt: skip


@contextlib.contextmanager
def status(description: str) -> Iterator[None]:
    """A spinner while the block runs, on a terminal: for work that has no count to show."""
    if not _terminal():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(description):
        yield
