"""The HTTP plumbing both listeners share: one log line per request, JSON answers, clean stops.

Connections are HTTP/1.1 keep-alive (the client's connection pool gets exercised as in real use).
Every open connection is registered with its listener so ``stop()`` can shut the sockets and wake
any handler thread blocked on a read or a write, then join them all.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .backend import Backend
from .wire import ApiError

log = logging.getLogger("grok_imagine.sandbox")

MAX_BODY_BYTES = 1024 * 1024


class Listener(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 that remembers its open connections."""

    daemon_threads = False  # tracked, so server_close() can join them ...
    block_on_close = True  # ... and stop() wakes them first, so the join is prompt
    # socketserver's default listen backlog is 5: a burst of new connections (8 parallel tasks,
    # several nodes, a benchmark) overflows it and the kernel resets some, which turns creates
    # into "answer lost" (UncertainCreateError) and downloads into retries.
    request_queue_size = 128

    def __init__(
        self, port: int, handler: type[BaseHTTPRequestHandler], sandbox: Backend, role: str
    ) -> None:
        self.sandbox = sandbox
        self.role = role
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def poke(self) -> None:
        """Connect once, so a serve_forever() waiting in select() looks at its stop flag now."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
        except OSError:
            pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer (a cancelled read, a capped download) is normal here:
        one DEBUG line instead of socketserver's traceback on stderr."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("%s: client %s went away: %s", self.role, client_address[0], exc)
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    """Common behaviour; subclasses implement ``route(method)``."""

    protocol_version = "HTTP/1.1"
    server_version = "GrokImagineSandbox/1.0"
    server: Listener

    # -- lifecycle --------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        threading.current_thread().name = f"grok-sandbox-{self.server.role}-connection"
        self.server.track(self.connection, True)
        if self.sandbox.stopping:  # accepted just as stop() closed the others: close this too
            self.server.close_connections()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    @property
    def sandbox(self) -> Backend:
        return self.server.sandbox

    # -- dispatch ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._status = 0
        self._body = b""
        started = time.monotonic()
        try:
            self._drain_body()  # always, so a refused request leaves the connection clean
            self.route(method)
        except ApiError as refusal:
            self.send_json(refusal.status, refusal.body, retry_after=refusal.retry_after)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception:  # a sandbox bug: say so in the log and to the client, keep serving
            log.exception("%s %s failed inside the sandbox", self.server.role, method)
            self.close_connection = True
            if not self._status:
                error = ApiError(500, "Internal error in the sandbox")
                self.send_json(500, error.body)
        finally:
            if self.sandbox.stopping:
                self.close_connection = True
            elapsed_ms = (time.monotonic() - started) * 1000
            # The path only: never headers (the key lives there) and never a query string.
            path = self.path.split("?", 1)[0]
            log.info(
                "%s %s %s -> %s (%.0f ms)",
                self.server.role,
                method,
                path,
                self._status or "no answer",
                elapsed_ms,
            )

    def route(self, method: str) -> None:
        raise NotImplementedError

    # -- answers ----------------------------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _dispatch logs one line per request itself

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.server.role, *args)

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload: Any, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        body = json.dumps(payload).encode("utf-8")
        self.send_bytes(status, body, "application/json", headers)

    def _drain_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Invalid Content-Length") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(413, f"Request body too large: at most {MAX_BODY_BYTES} bytes")
        self._body = self.rfile.read(length) if length > 0 else b""

    def read_json_body(self) -> Any:
        try:
            return json.loads(self._body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "Invalid JSON body") from None

    def bearer_key(self) -> str | None:
        """The key from ``Authorization: Bearer <key>``, or None when the header is missing."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return ""
        return key.strip()
