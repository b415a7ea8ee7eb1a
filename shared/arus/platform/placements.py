"""Work done on every placement (SPEC §9): each placement's ledgers live on its own primary, so
a job (migrate, the relay, the close, verify, prune) runs on each in turn, and a placement
whose database cannot be reached fails only its own ledgers: it is reported, and the job goes
on with the others."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import sqlalchemy as sa

from arus.platform.config import Settings

log = logging.getLogger("arus.platform.placements")
T = TypeVar("T")

# A database that is down, unreachable or refusing us; anything else is a bug and propagates.
UNREACHABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)


@dataclass
class Everywhere(Generic[T]):
    """What a job did on each placement, and the placements it could not reach (their error)."""

    done: dict[str, T] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def everywhere(settings: Settings, work: Callable[[Settings], T], *, what: str) -> Everywhere[T]:
    """`work(placement's settings)` on every placement, in the order the settings name them."""
    outcome: Everywhere[T] = Everywhere()
    for placement in settings.each_placement():
        try:
            outcome.done[placement.placement] = work(placement)
        except UNREACHABLE as exc:
            # The driver's message names the host, never a password (hide_parameters, and
            # pg8000 does not echo the password).
            reason = f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"
            outcome.failed[placement.placement] = reason
            log.error("%s: placement %s is unreachable", what, placement.placement,
                      extra={"placement": placement.placement, "error": reason})  # fmt: skip
    return outcome
