"""Jobs: the daily close and `arus verify`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence

# How a caller shows a job's progress over the ledgers it works through: given the ledgers and
# what is being done, it yields them back (the CLI's terminal bar, arus.tools.progress.track).
Progress = Callable[[Sequence[uuid.UUID], str], Iterable[uuid.UUID]]


def every(items: Sequence[uuid.UUID], _description: str) -> Iterable[uuid.UUID]:
    """No progress shown: the ledgers as they are."""
    return items
