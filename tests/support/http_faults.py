"""A real `arus serve` for client tests, and the faults injected between client and server.

- `server` (module): `arus serve` on a free 127.0.0.1 port against the application's URL,
  stopped by its PID when the module's tests are done; yields the base URL. Registered for the
  whole suite by tests/conftest.py.

Faults are injected two ways: an httpx transport that wraps the real one (drop the response
after the server handled the request, refuse the connection, time out, answer 503), and a real
TCP proxy that forwards a request, lets the server commit it, then closes the client's socket
without a byte of the response.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.brokers import free_port
from tests.support.ledgers import REPO

SERVER_START_TIMEOUT_S = 60.0

# --- a real server --------------------------------------------------------------------------


@contextmanager
def running_server(database_url: str, *, workers: int = 1) -> Iterator[str]:
    """`arus serve --workers N` in a subprocess against database_url; yields its base URL."""
    with served(database_url, workers=workers) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with running_server(database_url) as base_url:
        yield base_url


@dataclass
class Served:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stopped: bool = False

    def stop(self) -> int:
        """SIGTERM, as docker-compose or Cloud Run stop it; the exit code (asserted 0)."""
        self.stopped = True
        if self.process.poll() is None:
            self.process.terminate()
        try:
            returncode = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            log = self.log_path.read_text()
            raise AssertionError(f"arus serve ignored SIGTERM: {log}") from None
        assert returncode == 0, f"arus serve exited {returncode}: {self.log_path.read_text()}"
        return returncode


@contextmanager
def served(database_url: str, *, workers: int = 1) -> Iterator[Served]:
    """`arus serve --workers N` in a subprocess, up and answering; stopped (if the test did not)
    with SIGTERM, after which it must exit 0 (gunicorn's arbiter stops its workers)."""
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="arus-serve-")) / "serve.log"
    env = {**os.environ, "ARUS_DATABASE_URL": database_url, "ARUS_LOG_LEVEL": "WARNING"}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "arus.tools.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    server = Served(base_url, process, log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"arus serve exited: {log_path.read_text()}"
            try:
                if httpx.get(f"{base_url}/v1/accounts", timeout=1.0).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"arus serve did not start: {log_path.read_text()}"
            time.sleep(0.1)
        yield server
    finally:
        if not server.stopped:
            server.stop()


def no_sleep(_: float) -> None:
    """Tests never wait out a backoff: the delays are asserted, not slept."""


# --- fault injection ------------------------------------------------------------------------


@dataclass
class Fault:
    """Inject `kind` into the next `times` requests for which `matches` holds."""

    kind: str  # "drop_response" | "refuse" | "read_timeout" | "503"
    matches: Callable[[httpx.Request], bool]
    times: int


@dataclass
class FaultyTransport(httpx.BaseTransport):
    """Wraps the real transport; records every attempt and injects planned faults."""

    inner: httpx.BaseTransport = field(default_factory=lambda: httpx.HTTPTransport())
    faults: list[Fault] = field(default_factory=list)
    attempts: list[tuple[str, str, str | None]] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)

    def add(self, kind: str, times: int, method: str = "POST", path: str = "/v1/entries") -> None:
        def matches(request: httpx.Request) -> bool:
            return request.method == method and request.url.path.startswith(path)

        self.faults.append(Fault(kind, matches, times))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(
            (request.method, request.url.path, request.headers.get("Idempotency-Key"))
        )
        fault = next((f for f in self.faults if f.times > 0 and f.matches(request)), None)
        kind = None
        if fault is not None:
            fault.times -= 1
            kind = fault.kind
            self.injected.append(kind)
        if kind == "refuse":
            raise httpx.ConnectError("injected: connection refused", request=request)
        if kind == "503":
            return httpx.Response(
                503, json={"error": {"code": "unavailable", "message": "injected 503"}}
            )
        response = self.inner.handle_request(request)
        if kind in ("drop_response", "read_timeout"):
            response.read()  # the server has handled (and committed) the request...
            response.close()  # ...and its answer is lost on the way back
            if kind == "read_timeout":
                raise httpx.ReadTimeout("injected: read timed out", request=request)
            raise httpx.RemoteProtocolError(
                "injected: server disconnected without sending a response", request=request
            )
        return response

    def close(self) -> None:
        self.inner.close()


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 that forwards each request to the server, waits for the
    server's whole response, and then, for the first response of every distinct
    Idempotency-Key on a matching path, closes the client's socket without sending it.

    One request per connection: the proxy asks the server to close after responding.
    """

    def __init__(self, upstream: str, *, path_prefix: str = "/v1/entries") -> None:
        parsed = httpx.URL(upstream)
        self.upstream = (parsed.host, parsed.port or 80)
        self.path_prefix = path_prefix.encode()
        self.dropped_keys: set[str] = set()
        self.forwarded = 0
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="dropping-proxy", daemon=True)

    def __enter__(self) -> DroppingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                try:
                    self._handle(conn)
                except OSError:
                    pass  # the client gave up on this connection: its retry will come anew

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
            assert len(data) < 1_000_000, "request head too large"
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _handle(self, conn: socket.socket) -> None:
        request = self._read_request(conn)
        if not request:
            return
        head, _, body = request.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        kept = [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
        key = next(
            (
                line.partition(b":")[2].strip().decode()
                for line in kept
                if line.lower().startswith(b"idempotency-key:")
            ),
            None,
        )
        forwarded = b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n" + body
        with socket.create_connection(self.upstream, timeout=10) as upstream:
            upstream.sendall(forwarded)
            response = b""
            while chunk := upstream.recv(65536):
                response += chunk
        path = lines[0].split(b" ")[1]
        with self._lock:
            self.forwarded += 1
            drop = (
                path.startswith(self.path_prefix)
                and key is not None
                and key not in self.dropped_keys
            )
            if drop:
                self.dropped_keys.add(key)
                self.dropped += 1
        if not drop:
            conn.sendall(response)
