"""The HTTP server of `arus serve`, docker-compose and the bench: waitress in gunicorn's workers.

waitress reads each request in full on its I/O loop before a thread runs the app, so a client
that dribbles its request holds a socket, never a worker thread (SPEC §3.4, ADR-007). One
Python process cannot use two cores, so gunicorn forks and supervises the processes; each
worker runs a waitress loop on the listening sockets gunicorn hands it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.base import Worker
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge

from arus.errors import PayloadTooLarge, refusal
from arus.web.bodies import JSON_MIMETYPE

# Room for many idle or slow sockets per process: waitress stops accepting at its connection
# limit (100 by default), and select() cannot watch more than 1,024 descriptors, poll() can.
CONNECTION_LIMIT = 4000
HEARTBEAT_S = 1.0
GRACEFUL_S = 10  # how long a stopping server keeps answering the requests it has read
DRAIN_MARGIN_S = 2.5  # a worker's drain ends this long before the arbiter's SIGKILL
LINGER_S = 2.0  # how long a refused client may go on sending before its connection is closed


class _RefusalTask(ErrorTask):  # type: ignore[misc]
    """waitress's own refusals (a body past the limit, a malformed request) in Arus's error
    shape, like every other answer, instead of waitress's plain text."""

    def execute(self) -> None:
        error = self.request.error
        if error.code == 413:
            payload = PayloadTooLarge("the request body exceeds the size limit").to_json()
        else:
            payload = refusal(error.reason, error.body)
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.channel.linger_after_close = True
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", JSON_MIMETYPE))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Parser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's request parser, with the two refusals HTTP/1.1 framing needs that waitress
    (3.0.2) lacks. Each ends the request as an error, which answers it and closes the
    connection (_RefusalTask), so no byte after it is read as a request.

    - Content-Length with Transfer-Encoding is 400 (RFC 9112 §6.3): waitress would frame the
      body as chunked and serve what follows it on the connection, a request smuggled past a
      proxy that framed by Content-Length.
    - A chunk whose size line alone takes the body past the bound is 413 at that line: waitress
      would wait for and spool the chunk's bytes up to the bound first (a 30-hex-digit size
      has no end).
    """

    completed: bool  # waitress's own flag: the request is read, or refused

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        # From the header block as sent, not waitress's dict of it: waitress drops
        # Transfer-Encoding once it has read it (even an empty one), and its unreleased main
        # drops Content-Length beside it too. Every header line follows a CRLF (the request line
        # comes first; waitress refuses a bare LF).
        sent = header_plus.lower()
        if b"\r\ntransfer-encoding:" in sent and b"\r\ncontent-length:" in sent:
            raise ParsingError("a request may not have both Content-Length and Transfer-Encoding")

    def received(self, data: bytes) -> int:
        consumed = int(super().received(data))
        if self.chunked and not self.completed:
            promised = self.body_bytes_received + self.body_rcv.chunk_remainder
            if promised >= self.adj.max_request_body_size:
                self.error = RequestEntityTooLarge("a chunk takes the body past the size limit")
                self.completed = True
        return consumed


class _Channel(HTTPChannel):  # type: ignore[misc]
    """waitress's connection, with a lingering close after a refusal (what nginx does): a client
    still sending the body it was refused would otherwise have its unread bytes make the
    kernel reset the connection, and the reset destroys the 413 before the client reads it.
    So: half-close, then read and drop what still comes, until the client closes or LINGER_S."""

    parser_class = _Parser
    error_task_class = _RefusalTask
    linger_after_close = False
    draining = False  # the server is stopping: read no further request on this connection
    _linger_until: float | None = None

    def handle_close(self) -> None:
        if self.linger_after_close and self._linger_until is None and self.socket is not None:
            try:
                self.socket.shutdown(socket.SHUT_WR)  # the answer, then end-of-stream
            except OSError:
                pass
            else:
                self._linger_until = time.monotonic() + LINGER_S
                self.will_close = False
                return
        super().handle_close()

    def readable(self) -> bool:
        if self._linger_until is not None:
            return True
        return not self.draining and bool(super().readable())

    @property
    def lingering(self) -> bool:
        return self._linger_until is not None

    @property
    def busy(self) -> bool:
        """A request read and not yet answered, or an answer not yet sent."""
        return bool(self.requests or self.total_outbufs_len)

    def writable(self) -> bool:
        if self._linger_until is not None:
            return time.monotonic() >= self._linger_until  # then handle_write closes
        return bool(super().writable())

    def handle_write(self) -> None:
        if self._linger_until is not None:
            super().handle_close()
        else:
            super().handle_write()

    def handle_read(self) -> None:
        if self._linger_until is None:
            super().handle_read()
            return
        try:
            dropped = self.socket.recv(65536)
        except OSError:
            dropped = b""
        if not dropped or time.monotonic() >= self._linger_until:
            super().handle_close()


def _waitress(app: Flask, *, threads: int, socket_map: dict[int, Any], **where: Any) -> Any:
    """A waitress server for app on `host`/`port` or on gunicorn's `sockets`, not yet running."""
    server = create_server(
        app, map=socket_map, threads=threads, connection_limit=_connection_limit(),
        asyncore_use_poll=True, ident="arus",
        # The app judges every body against its route's exact limit. waitress's own bound only
        # keeps it from spooling an endless body to disk; it counts a chunked body's framing
        # too, hence the headroom (else a chunked body at the limit would be refused).
        max_request_body_size=2 * app.config["MAX_CONTENT_LENGTH"], **where,
    )  # fmt: skip
    for dispatcher in _listeners(socket_map):
        dispatcher.channel_class = _Channel
    return server


def _connection_limit() -> int:
    """CONNECTION_LIMIT, or fewer if the process may not open that many files: each connection
    takes a socket and may take a spool file, and at the limit waitress stops accepting, where
    past the file limit its accept loop would spin. The soft file limit is raised first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 2 * CONNECTION_LIMIT + 256 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass  # keep the soft limit, and fit the connection limit to it
    return max(16, min(CONNECTION_LIMIT, (soft - 256) // 2))


def _listeners(socket_map: dict[int, Any]) -> list[Any]:
    return [d for d in socket_map.values() if isinstance(d, BaseWSGIServer)]


def _loop_once(server: Any, socket_map: dict[int, Any], timeout_s: float) -> None:
    server.asyncore.loop(timeout=timeout_s, map=socket_map, use_poll=True, count=1)


def _drain(
    server: Any, socket_map: dict[int, Any], *, within_s: float, beat: Callable[[], None]
) -> None:
    """Stop accepting and reading, answer the requests already read, then close every
    connection, for up to within_s: an entry committed while the server stops reaches its
    client. Idle connections close at once (a keep-alive client reconnects elsewhere)."""
    for listener in _listeners(socket_map):
        wasyncore.dispatcher.close(listener)  # its socket only: the trigger stays to wake us
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        channels = [c for c in list(socket_map.values()) if isinstance(c, _Channel)]
        if not channels:
            break
        for channel in channels:
            channel.draining = True
            if not (channel.busy or channel.lingering):
                # Lingering, so the last answer sent is not lost to a reset.
                channel.linger_after_close = channel.connected
                channel.handle_close()
        beat()
        _loop_once(server, socket_map, 0.1)
    server.task_dispatcher.shutdown(timeout=1)
    wasyncore.close_all(socket_map)


def _wake(socket_map: dict[int, Any]) -> None:
    """Interrupt the loop's poll now (safe in a signal handler: a write to a pipe)."""
    listeners = _listeners(socket_map)
    if listeners:
        listeners[0].pull_trigger()


class InProcessServer:
    """One waitress process: `arus dev`, `arus serve --workers 1`, and tests that need the
    shipped server on a free port (port 0)."""

    def __init__(self, app: Flask, host: str, port: int, *, threads: int) -> None:
        self._socket_map: dict[int, Any] = {}
        self._server = _waitress(app, threads=threads, socket_map=self._socket_map,
                                 host=host, port=port)  # fmt: skip
        # One port for every address the host resolves to (localhost: ::1 and 127.0.0.1).
        self.port = int(_listeners(self._socket_map)[0].effective_port)
        self._stopping = threading.Event()

    def serve_until_stopped(self) -> None:
        while not self._stopping.is_set():
            _loop_once(self._server, self._socket_map, HEARTBEAT_S)
        _drain(self._server, self._socket_map, within_s=GRACEFUL_S, beat=lambda: None)

    def stop(self) -> None:
        """Ask the loop to stop (from any thread or a signal handler); it drains first."""
        self._stopping.set()
        _wake(self._socket_map)


def serve_in_process(
    app: Flask, host: str, port: int, *, threads: int, ready: threading.Event | None = None
) -> None:
    """One waitress process in the main thread until SIGTERM or SIGINT."""
    server = InProcessServer(app, host, port, threads=threads)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop())
    if ready is not None:
        ready.set()
    server.serve_until_stopped()


class WaitressWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker whose HTTP is waitress (gunicorn's own workers give a thread to a
    connection as soon as its first byte arrives)."""

    def run(self) -> None:
        socket_map: dict[int, Any] = {}
        self._socket_map = socket_map
        server = _waitress(
            self.wsgi, threads=self.cfg.threads, socket_map=socket_map,
            sockets=[listener.sock for listener in self.sockets], backlog=self.cfg.backlog,
        )  # fmt: skip
        beat = 0.0
        while self.alive and self.ppid == os.getppid():
            if time.monotonic() - beat >= HEARTBEAT_S:
                self.notify()  # the arbiter replaces a worker silent for --timeout seconds
                beat = time.monotonic()
            _loop_once(server, socket_map, HEARTBEAT_S)
        # Inside the arbiter's graceful_timeout, after which it SIGKILLs this worker.
        within_s = max(1.0, self.cfg.graceful_timeout - DRAIN_MARGIN_S)
        _drain(server, socket_map, within_s=within_s, beat=self.notify)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: stop now, not at the poll's next timeout."""
        super().handle_exit(sig, frame)
        _wake(getattr(self, "_socket_map", {}))


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app_factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._app_factory = app_factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._app_factory()  # in each worker, after the fork: its own database engines


def serve_with_workers(
    app_factory: Callable[[], Flask], host: str, port: int, *, workers: int, threads: int
) -> None:
    """gunicorn's arbiter over `workers` waitress processes until SIGTERM or SIGINT."""
    _Gunicorn(app_factory, {
        "bind": f"{host}:{port}", "workers": workers, "threads": threads,
        "worker_class": f"{__name__}.WaitressWorker", "timeout": 30,
        "graceful_timeout": GRACEFUL_S, "loglevel": "warning",
    }).run()  # fmt: skip
