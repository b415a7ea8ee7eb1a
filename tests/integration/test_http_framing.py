"""HTTP/1.1 framing at the real server (SPEC §3.4, RFC 9112 §6): what `arus serve` runs, in a
subprocess, in both shapes (one waitress process; gunicorn over two waitress workers), spoken
to on raw sockets so that nothing between the test and the server fixes the framing.

- A request with both Content-Length and Transfer-Encoding is 400 and its connection closed:
  the request smuggled behind it on the same connection is never answered.
- A chunk whose size line alone takes the body past the server's bound is refused at once
  (413), not after its bytes are read, and the connection closed.
- Keep-alive still works: requests one after another on one connection are all answered.
Bounded: every socket has a 5 s timeout, every server is stopped at the end."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.http_faults import Served, served

TIMEOUT_S = 5.0
PROMPT_S = 2.0  # a refusal that comes later than this waited for bytes it should not need


@pytest.fixture(scope="module", params=[1, 2], ids=["waitress", "gunicorn-2-workers"])
def server(request, database_url) -> Iterator[Served]:
    with served(database_url, workers=request.param) as running:
        yield running


def _connect(server: Served) -> socket.socket:
    port = int(server.base_url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"{method} {path} HTTP/1.1\r\nHost: arus\r\n{lines}\r\n".encode()


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def _read_response(conn: socket.socket, pending: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body, from the socket and what was already read."""
    while b"\r\n\r\n" not in pending:
        piece = conn.recv(65536)
        assert piece, f"the connection closed before a whole response: {bytes(pending)!r}"
        pending += piece
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers["content-length"])
    body = bytearray(rest)
    while len(body) < length:
        piece = conn.recv(65536)
        assert piece, "the connection closed inside a response body"
        body += piece
    pending[:] = body[length:]
    return int(status_line.split(" ")[1]), headers, bytes(body[:length])


def _read_to_end(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails on TIMEOUT_S)."""
    received = bytearray()
    try:
        while piece := conn.recv(65536):
            received += piece
    except TimeoutError:
        raise AssertionError(
            f"the server kept the connection open {TIMEOUT_S} s after: {bytes(received)!r}"
        ) from None
    except ConnectionResetError:
        pass  # closed, with bytes still unread on its side: the answer is what arrived
    return bytes(received)


def _statuses(raw: bytes) -> list[int]:
    """The status of every response in a stream of them."""
    return [int(line.split(b" ")[1]) for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def _error_code(raw: bytes) -> str:
    body = raw.partition(b"\r\n\r\n")[2]
    return str(json.loads(body)["error"]["code"])


@pytest.mark.parametrize("order", ["content-length first", "transfer-encoding first"])
def test_content_length_with_transfer_encoding_is_400_and_the_connection_closed(
    server, ledger, order
):
    smuggled = _head("GET", "/v1/accounts", ledger.read)  # 200 if it were ever answered
    body = b"0\r\n\r\n" + smuggled
    framing = [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
    if order == "transfer-encoding first":
        framing.reverse()
    headers = {**ledger.write, "Content-Type": "application/json", **dict(framing)}
    with _connect(server) as conn:
        conn.sendall(_head("POST", "/v1/entries", headers) + body)
        time.sleep(0.2)  # and once more, on its own, as a client that pipelines would
        try:
            conn.sendall(smuggled)
        except (BrokenPipeError, ConnectionResetError):
            pass  # already closed: nothing more can be answered
        raw = _read_to_end(conn)
    assert _statuses(raw) == [400], raw
    assert raw.count(b"HTTP/1.") == 1, f"more than one answer on the connection: {raw!r}"
    assert b"content-type: application/json" in raw.lower() and _error_code(raw), raw


@pytest.mark.parametrize("size_line", [b"f" * 30, b"%x" % (1 << 30)], ids=["30-hex-digits", "1GiB"])
def test_a_chunk_size_past_the_bound_is_refused_at_once(server, ledger, size_line):
    headers = {**ledger.write, "Content-Type": "application/json",
               "Idempotency-Key": uuid.uuid4().hex, "Transfer-Encoding": "chunked"}  # fmt: skip
    with _connect(server) as conn:
        started = time.monotonic()
        conn.sendall(_head("POST", "/v1/entries", headers) + size_line + b"\r\n" + b'{"post')
        raw = _read_to_end(conn)  # nothing more is sent: the size line must be enough
        elapsed_s = time.monotonic() - started
    assert _statuses(raw) == [413], raw
    assert _error_code(raw) == "payload_too_large", raw
    assert elapsed_s < PROMPT_S, f"refused after {elapsed_s:.2f} s"


def test_keep_alive_serves_requests_one_after_another(server, ledger):
    """Content-Length, chunked, and a GET on one connection, each answered, the connection kept."""
    code = f"cash-{uuid.uuid4().hex[:8]}"
    account = json.dumps({"code": code, "name": "Cash", "type": "asset",
                          "currency": "USD"}).encode()  # fmt: skip
    other = json.dumps({"code": f"{code}-2", "name": "Cash 2", "type": "asset",
                        "currency": "USD"}).encode()  # fmt: skip
    json_headers = {**ledger.write, "Content-Type": "application/json"}
    requests = [
        _head("POST", "/v1/accounts", {**json_headers, "Content-Length": str(len(account))})
        + account,
        _head("POST", "/v1/accounts", {**json_headers, "Transfer-Encoding": "chunked"})
        + _chunked(other),
        _head("GET", f"/v1/accounts/{code}", ledger.read),
    ]
    pending = bytearray()
    answers = []
    with _connect(server) as conn:
        for request in requests:
            conn.sendall(request)
            status, headers, _body = _read_response(conn, pending)
            answers.append(status)
            assert headers.get("connection", "").lower() != "close", (answers, headers)
    assert answers == [201, 201, 200], answers
