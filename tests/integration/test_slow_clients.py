"""Slow clients (SPEC §3.4, issue 11): 200 clients each dribbling a request one byte every half
second must not starve a normal client of `arus serve`: its requests keep p99 <= 1 s. Both
shapes of the server: one waitress process (`arus dev`, the default) and gunicorn over two
waitress workers of four threads, which docker-compose and the bench run (ADR-007); gunicorn's
own gthread workers fail this (each dribbler takes a thread).
Bounded: 200 sockets, 6 s of dribbling, every socket and the server closed at the end."""

from __future__ import annotations

import socket
import statistics
import threading
import time
import uuid

import pytest

from tests.support.http_faults import running_server

SLOW_CLIENTS = 200
DRIBBLE_S = 0.5
DURATION_S = 6.0
P99_BOUND_S = 1.0
LINES = [{"account": "cash", "direction": "debit", "amount": 1},
         {"account": "equity", "direction": "credit", "amount": 1}]  # fmt: skip


def _dribble(port: int, stop: threading.Event, opened: list[int]) -> None:
    """Open SLOW_CLIENTS connections and send each one byte of a request every DRIBBLE_S."""
    request = (b"POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100000\r\n\r\n" + b"{" * 100_000)  # fmt: skip
    sockets = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setblocking(False)
            sockets.append(sock)
        opened.append(len(sockets))
        position = 0
        while not stop.is_set() and position < len(request):
            for sock in sockets:
                try:
                    sock.send(request[position : position + 1])
                except (BlockingIOError, OSError):
                    pass  # a server that dropped a dribbler is allowed to
            position += 1
            stop.wait(DRIBBLE_S)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_two_hundred_slow_clients_do_not_starve_a_normal_one(database_url, ledger, workers):
    import httpx

    with running_server(database_url, workers=workers) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        stop = threading.Event()
        opened: list[int] = []
        dribbler = threading.Thread(target=_dribble, args=(port, stop, opened), daemon=True)
        dribbler.start()
        deadline = time.monotonic() + 10
        while not opened and time.monotonic() < deadline:
            time.sleep(0.05)
        assert opened == [SLOW_CLIENTS], "the slow clients could not all connect"
        latencies = []
        statuses = []
        headers = {"Authorization": f"Bearer {ledger.write_key}"}
        try:
            with httpx.Client(base_url=base_url, timeout=10) as client:
                client.post("/v1/accounts", headers=headers, json={
                    "code": "cash", "name": "Cash", "type": "asset", "currency": "USD",
                    "allow_negative": True})  # fmt: skip
                client.post("/v1/accounts", headers=headers, json={
                    "code": "equity", "name": "Equity", "type": "equity", "currency": "USD",
                    "allow_negative": True})  # fmt: skip
                end = time.monotonic() + DURATION_S
                while time.monotonic() < end:
                    started = time.monotonic()
                    response = client.post(
                        "/v1/entries",
                        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                        json={"postings": LINES},
                    )
                    latencies.append(time.monotonic() - started)
                    statuses.append(response.status_code)
        finally:
            stop.set()
            dribbler.join(timeout=30)
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    figures = (f"requests={len(latencies)} p50={statistics.median(latencies) * 1000:.0f}ms "
               f"p99={p99 * 1000:.0f}ms max={latencies[-1] * 1000:.0f}ms "
               f"statuses={sorted(set(statuses))} slow_clients={SLOW_CLIENTS} "
               f"workers={workers}")  # fmt: skip
    print(f"\nSLOW CLIENTS {figures}")
    assert len(latencies) >= 20 and set(statuses) == {201}, figures
    assert p99 <= P99_BOUND_S, figures
