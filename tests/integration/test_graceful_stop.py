"""Stopping `arus serve` under load with SIGTERM, as docker-compose and Cloud Run stop a
container (ADR-007): it stops reading new requests at once, answers the ones it has read, closes
every connection and exits 0. Every entry it committed reached its client as a 201: a client that
got no answer finds no entry for its key, so a retry is safe either way. Bounded: 8 clients,
about 2 s of load, then the stop."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa
from arus.platform.config import Settings
from arus.platform.db import get_engine

from tests.support.http_faults import served

CLIENTS = 8
LOAD_S = 2.0
LINES = [{"account": "cash", "direction": "debit", "amount": 1},
         {"account": "equity", "direction": "credit", "amount": 1}]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_loses_no_answer_to_a_committed_entry(
    database_url, owner_database_url, ledger, workers
):
    answered: dict[str, int] = {}  # idempotency key -> status of the answer the client read
    unanswered: list[str] = []  # keys whose request got a transport error instead
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    headers = {"Authorization": f"Bearer {ledger.write_key}"}

    def client(base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=15) as http:  # keep-alive connections
            while not stop.is_set():
                key = uuid.uuid4().hex
                try:
                    response = http.post("/v1/entries", json={"postings": LINES},
                                         headers={**headers, "Idempotency-Key": key})  # fmt: skip
                except httpx.TransportError as exc:
                    with lock:
                        unanswered.append(key)
                        errors[type(exc).__name__] += 1
                    time.sleep(0.05)
                    continue
                with lock:
                    answered[key] = response.status_code

    with served(database_url, workers=workers) as server:
        for code, type_ in (("cash", "asset"), ("equity", "equity")):
            httpx.post(f"{server.base_url}/v1/accounts", headers=headers, json={
                "code": code, "name": code, "type": type_, "currency": "USD",
                "allow_negative": True}, timeout=15)  # fmt: skip
        threads = [threading.Thread(target=client, args=(server.base_url,))
                   for _ in range(CLIENTS)]  # fmt: skip
        for thread in threads:
            thread.start()
        try:
            time.sleep(LOAD_S)
            before_stop = len(answered)
            started = time.monotonic()
            server.stop()  # SIGTERM, then exit 0 (asserted)
            stop_s = time.monotonic() - started
            time.sleep(0.5)  # clients now meet a closed port
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

    with get_engine(Settings(database_url=owner_database_url)).connect() as conn:
        stored = set(conn.execute(sa.text(
            "SELECT idempotency_key FROM entries WHERE ledger_id = :l"),
            {"l": ledger.ledger_id}).scalars())  # fmt: skip
    statuses = Counter(answered.values())
    figures = (f"workers={workers} answered={dict(statuses)} before_stop={before_stop} "
               f"unanswered={len(unanswered)} errors={dict(errors)} stored={len(stored)} "
               f"stop_s={stop_s:.2f}")  # fmt: skip
    print(f"\nGRACEFUL STOP {figures}")
    assert set(statuses) == {201} and before_stop > 0, figures
    assert unanswered, f"the stop was not under load: {figures}"
    committed_unanswered = [key for key in unanswered if key in stored]
    assert committed_unanswered == [], f"committed without an answer: {figures}"
    assert {key for key in answered} <= stored, figures
    # It stops reading at once: a drain that went on serving keep-alive clients took 6 s here.
    assert stop_s < 3, figures
