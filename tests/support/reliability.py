"""Shared machinery of the reliability matrix: the matrix modules import it; it holds no tests.

* ``Rig``: a journal-backed ``TaskRunner`` (what the nodes use) against a sandbox, with the
  sandbox's ledger, the journal's rows and the kept files one call away, so every row can assert
  exactly what was charged and what was kept.
* ``FaultProxy``: a real HTTP forwarder on 127.0.0.1 in front of the sandbox's API, for the faults
  the sandbox cannot make itself: connection resets (before or in the middle of an answer),
  refusal mid-run (it stops listening, then listens again on the same port), rewritten answers
  (unknown status words, a success with zero URLs) and canned answers (a redirect).
* ``matrix_row``: the fault / what the user sees / what is kept of each row, read by
  ``python tests/reliability_doc.py``, which runs the matrix and writes ``docs/reliability.md``
  from the results.
* ``no_key_leaks``: an autouse fixture the matrix modules import: DEBUG logging on every logger
  for every scenario, and at the end no record and no file under the test's folder holds the key.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from support import submodule
from support.api_names import public_api
from support.journal_views import history
from support.keys import TEST_KEY

api = public_api()
errors = submodule("api.errors")
journal_mod = submodule("journal")

KEY = TEST_KEY
POLL = api.PollSchedule().scaled(0.05)  # first read after 75 ms, then every ~22 ms
WAIT_LIMIT_S = 60.0
"""Generous bound for anything that waits (a hang guard, never a performance assertion)."""
PROMPT = "a lighthouse in a storm, oil painting"


# -- the matrix table ------------------------------------------------------------------------------

MATRIX: list[dict[str, str]] = []


def matrix_row(area: str, fault: str, sees: str, kept: str) -> Callable[[Any], Any]:
    """Describe the row a test proves; the doc generator pairs it with the test's result."""

    def mark(test: Any) -> Any:
        MATRIX.append(
            {"area": area, "fault": fault, "sees": sees, "kept": kept,
             "module": test.__module__.rsplit(".", 1)[-1], "test": test.__name__}
        )  # fmt: skip
        return test

    return mark


def pointer_row(area: str, fault: str, sees: str, kept: str, test: str) -> None:
    """A row another engineer's test already proves exactly (``file.py::test_name``)."""
    module, _, name = test.partition("::")
    MATRIX.append({"area": area, "fault": fault, "sees": sees, "kept": kept,
                   "module": module.removesuffix(".py"), "test": name})  # fmt: skip


# -- the runner rig --------------------------------------------------------------------------------


class ClientFactory:
    """What the runner calls for an API client; counts the calls (a reused result makes none)."""

    def __init__(self, base_url: str, key: str = KEY, **settings: Any) -> None:
        self.base_url = base_url
        self.key = key
        self.settings = settings
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        settings = api.Settings(api_key=self.key, base_url=self.base_url, **self.settings)
        return api.GrokClient(settings, poll=POLL)


@dataclass
class Rig:
    sb: Any
    home: Path
    runner: Any
    factory: ClientFactory
    caught: list[BaseException] = field(default_factory=list)

    @property
    def files_root(self) -> Path:
        return self.home / "files"

    def ledger(self) -> tuple[int, int]:
        """(creates, net credits charged) for the test key, as the sandbox counts them."""
        entry = self.sb.ledger(KEY)
        return entry.creates, entry.credits_charged

    def kept(self) -> list[Path]:
        """Every kept result file (temporary files of an interrupted write excluded)."""
        if not self.files_root.exists():
            return []
        return sorted(p for p in self.files_root.rglob("*") if p.is_file()
                      and not p.name.startswith("."))  # fmt: skip

    def history(self, prompt: str = PROMPT, seed: int = 0) -> list[Any]:
        identity = journal_mod.RequestIdentity.text_to_image(prompt, seed=seed)
        return history(self.runner.journal, identity)

    def expect(self, exc_type: type[BaseException], call: Callable[[], Any]) -> BaseException:
        """Run ``call``, which must raise ``exc_type``; the error is one line and keyless."""
        caught = bounded(lambda: raised(call), what="the call to end")
        assert isinstance(caught, exc_type), f"expected {exc_type.__name__}, got {caught!r}"
        assert_keyless_error(caught)
        message = str(caught)
        assert message and "\n" not in message, message
        self.caught.append(caught)
        return caught


def make_rig(tmp_path: Path, sb: Any, base_url: str | None = None, **settings: Any) -> Rig:
    factory = ClientFactory(base_url or sb.base_url, **settings)
    runner = journal_mod.TaskRunner(
        factory,
        journal=journal_mod.Journal(tmp_path / "journal.sqlite"),
        files=journal_mod.FileStore(tmp_path / "files"),
    )
    return Rig(sb, tmp_path, runner, factory)


def point_nodes_at(monkeypatch: pytest.MonkeyPatch, home: Path, base_url: str) -> None:
    """The nodes' environment: journal and kept files under ``home``, fast polling, the key in
    ``APIINONE_API_KEY`` only (no key file). Callers close the nodes' journals when done."""
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(home))
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(home.parent / "no-key-file"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    monkeypatch.setenv("APIINONE_API_KEY", KEY)
    monkeypatch.setenv("APIINONE_BASE_URL", base_url)


def raised(call: Callable[[], Any]) -> BaseException:
    """The exception ``call()`` raises (the test fails if it returns instead)."""
    try:
        result = call()
    except BaseException as exc:
        return exc
    raise AssertionError(f"expected an error, the call returned {result!r}")


def bounded(call: Callable[[], Any], limit: float = WAIT_LIMIT_S, what: str = "the call") -> Any:
    """``call()`` on a thread, failing the test (instead of hanging it) if it never returns."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="reliability-bounded", daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"gave up waiting for {what} after {limit:g} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (connecting to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the key stays secret --------------------------------------------------------------------------


def assert_keyless_error(exc: BaseException) -> None:
    """Neither the error nor anything chained to it shows the key, whatever way it is printed."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    seen = [text, str(exc), repr(exc), repr(getattr(exc, "args", ()))]
    for value in vars(exc).values() if hasattr(exc, "__dict__") else ():
        seen.append(repr(value))
    for shown in seen:
        assert KEY not in shown, f"the key leaked into {type(exc).__name__}"


def files_holding_key(root: Path) -> list[Path]:
    """Files under ``root`` whose bytes contain the key (the journal's -wal/-shm included)."""
    if not root.exists():
        return []
    needle = KEY.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def records_holding_key(records: list[logging.LogRecord]) -> list[str]:
    leaks = []
    for record in records:
        parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        if any(KEY in part for part in parts):
            leaks.append(f"{record.name}: {record.levelname}")
    return leaks


@pytest.fixture(autouse=True)
def no_key_leaks(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> Iterator[None]:
    """Every scenario runs with DEBUG logs on; afterwards no record and no file has the key."""
    caplog.set_level(logging.DEBUG)  # the root logger: urllib3's and sqlite's neighbours too
    yield
    assert not records_holding_key(caplog.records), records_holding_key(caplog.records)
    assert not files_holding_key(tmp_path), files_holding_key(tmp_path)


# -- a misbehaving forwarder -----------------------------------------------------------------------

PASS = "pass"
RESET = "reset"  # read the request, then reset the connection without forwarding it
FORWARD_THEN_RESET = "forward_then_reset"  # forward it, send half the answer, then reset
REWRITE = "rewrite"  # forward it and pass the JSON answer through ``transform``
RESPOND = "respond"  # answer with ``transform(request)`` -> (status, headers, body) instead
FORWARD_THEN_RESPOND = "forward_then_respond"  # forward it, drop the answer, answer as RESPOND
DRIP = "drip"  # forward it; send the headers, then the body one byte every ``delay`` seconds
SILENT = "silent"  # read the request, then answer nothing until the client hangs up

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
               "proxy-connection", "te", "trailer", "upgrade"}  # fmt: skip


@dataclass
class Rule:
    method: str
    path_prefix: str
    action: str
    times: int | None = 1  # None: for ever
    transform: Callable[..., Any] | None = None
    delay: float = 0.1


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    action: str
    had_authorization: bool


class FaultProxy:
    """HTTP on 127.0.0.1 forwarded to ``upstream``; ``add()`` rules pick requests to spoil.

    One request per connection (every answer says ``Connection: close``), so a spoiled answer
    never leaves a half-used connection in the client's pool.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._rules: list[Rule] = []
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._stop = threading.Event()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._listen()
        return self

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stop.clear()
        self._accepting = threading.Thread(
            target=self._accept_loop, args=(listener,), name="fault-proxy-accept"
        )
        self._accepting.start()

    def refuse(self) -> None:
        """Stop listening: connections to the port are refused until ``listen_again()``."""
        self._stop.set()
        if self._accepting is not None:
            self._accepting.join()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def listen_again(self) -> None:
        self._listen()

    def stop(self) -> None:
        self.refuse()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(WAIT_LIMIT_S)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- rules and what happened --------------------------------------------------------------

    def add(self, method: str, path_prefix: str, action: str, times: int | None = 1,
            transform: Callable[..., Any] | None = None, delay: float = 0.1) -> None:  # fmt: skip
        with self._lock:
            self._rules.append(Rule(method, path_prefix, action, times, transform, delay))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.method == method and path.startswith(rule.path_prefix):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule
            return None

    # -- serving ------------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), name="fault-proxy-conn")
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(WAIT_LIMIT_S)
        try:
            request = _read_request(conn)
            if request is None:
                return
            method, path, headers, body = request
            rule = self._take(method, path)
            action = rule.action if rule else PASS
            with self._lock:
                self._seen.append(Seen(method, path, action, "authorization" in headers))
            if action == RESET:
                _reset(conn)
                return
            if action == SILENT:
                conn.settimeout(0.05)
                while not self._stop.is_set():
                    try:
                        if not conn.recv(1):
                            return  # the client gave up waiting
                    except TimeoutError:
                        continue
                return
            if action == RESPOND:
                assert rule is not None and rule.transform is not None
                status, extra, answer = rule.transform(method, path)
                conn.sendall(_response_bytes(status, extra, answer))
                return
            status, answer_headers, answer = self._forward(method, path, headers, body)
            if action == FORWARD_THEN_RESPOND:  # a gateway that lost the upstream's answer
                assert rule is not None and rule.transform is not None
                status, answer_headers, answer = rule.transform(method, path)
            if action == REWRITE:
                assert rule is not None and rule.transform is not None
                answer = json.dumps(rule.transform(json.loads(answer))).encode()
            raw = _response_bytes(status, answer_headers, answer)
            if action == DRIP:  # a stalled gateway: never silent long enough for a read timeout
                assert rule is not None
                head_end = raw.index(b"\r\n\r\n") + 4
                conn.sendall(raw[:head_end])
                for position in range(head_end, len(raw)):
                    if self._stop.wait(rule.delay):
                        return
                    conn.sendall(raw[position : position + 1])
                return
            if action == FORWARD_THEN_RESET:
                conn.sendall(raw[: len(raw) // 2])
                _reset(conn)
                return
            conn.sendall(raw)
        except OSError:
            pass
        finally:
            conn.close()

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes
                 ) -> tuple[int, list[tuple[str, str]], bytes]:  # fmt: skip
        upstream = http.client.HTTPConnection(*self._upstream, timeout=WAIT_LIMIT_S)
        try:
            sent = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP and k != "host"}
            upstream.request(method, path, body=body or None, headers=sent)
            response = upstream.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            upstream.close()


def _read_request(conn: socket.socket) -> tuple[str, str, dict[str, str], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return method, path, headers, rest[:length]


def _response_bytes(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    reason = http.client.responses.get(status, "Unknown")
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset (RST), not an orderly FIN: the peer sees ECONNRESET."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# -- docs/reliability.md, from a run of the matrix -------------------------------------------------

MATRIX_MODULES = (
    "test_reliability_api", "test_reliability_downloads", "test_reliability_input",
    "test_reliability_key_leaks", "test_reliability_reader_properties", "test_reliability_soak",
    "test_reliability_storage",
)  # fmt: skip


def matrix_rows() -> list[dict[str, str]]:
    """Every row the matrix modules declare (importing them fills ``MATRIX``)."""
    import importlib

    harness = importlib.import_module("support.reliability")  # the module the rows fill
    for name in MATRIX_MODULES:
        importlib.import_module(name)
    return harness.MATRIX
