"""The storm harness: WORKERS threads released together by a barrier, each with its own test
client, their outcomes collected, and the peak number of requests in flight measured."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tests.support.ledgers import Api

WORKERS = 32  # the test pool holds 40 connections: every worker gets its own
BARRIER_TIMEOUT_S = 30
WORKER_TIMEOUT_S = 120


@dataclass(frozen=True)
class Outcome:
    """What one request got back, whichever way it reached the engine."""

    status: int
    body: Any
    replayed: bool = False

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and "error" in self.body:
            return str(self.body["error"]["code"])
        return None

    @property
    def label(self) -> str:
        return self.error_code or str(self.status)


class InFlight:
    """Counts requests in flight and remembers the peak: the storm's real concurrency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self.now -= 1


class ThreadClient:
    """The api fixture's function apps with a test client of this thread's own (Flask test
    clients are not meant to be shared between threads); every POST counts as in flight."""

    def __init__(self, api: Any, in_flight: InFlight) -> None:
        self._api = type(api)(
            api.post_client.application.test_client(), api.query_client.application.test_client()
        )
        self.in_flight = in_flight

    def post(self, path: str, **kwargs: Any) -> Any:
        with self.in_flight:
            return self._api.post(path, **kwargs)


def http_outcome(response: Any) -> Outcome:
    return Outcome(
        status=response.status_code,
        body=response.get_json(),
        replayed=response.headers.get("Idempotent-Replayed") == "true",
    )


def storm(
    api: Api,
    job: Callable[[int, ThreadClient], list[Outcome]],
    *,
    while_running: Callable[[], None] | None = None,
) -> tuple[list[Outcome], int]:
    """Run job(worker_index, client) on WORKERS threads released together by a barrier.

    `while_running` runs on the test's own thread once the workers are started (to release
    held locks). Returns every outcome and the peak number of requests in flight at once.
    """
    barrier = threading.Barrier(WORKERS, timeout=BARRIER_TIMEOUT_S)
    in_flight = InFlight()

    def run(index: int) -> list[Outcome]:
        client = ThreadClient(api, in_flight)
        barrier.wait()
        return job(index, client)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(run, index) for index in range(WORKERS)]
        if while_running is not None:
            while_running()
        outcomes = [o for future in futures for o in future.result(timeout=WORKER_TIMEOUT_S)]
    return outcomes, in_flight.peak
