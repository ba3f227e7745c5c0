"""The standard environment variables reach the client: HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE.

A tiny forwarding proxy (plain forwarding and CONNECT tunnels) and a TLS front for the sandbox
run on 127.0.0.1 here; the certificate is made on the spot with the ``openssl`` command.
"""

from __future__ import annotations

import http.client
import select
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY

api = public_api()
errors = submodule("api.errors")

FAST_POLL = api.PollSchedule().scaled(0.05)
WAIT_S = 30.0
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


@dataclass(frozen=True)
class Seen:
    method: str
    target: str
    had_authorization: bool


class Forwarder(ThreadingHTTPServer):
    """A forward proxy (absolute URIs, CONNECT) or, with ``upstream`` set, a reverse proxy."""

    daemon_threads = True

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ForwardHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, method: str, target: str, had_authorization: bool) -> None:
        with self.lock:
            self.seen.append(Seen(method, target, had_authorization))


class _ForwardHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Forwarder

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_CONNECT(self) -> None:
        self.server.record("CONNECT", self.path, False)
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 10)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        target = (self.server.upstream or "") + self.path
        self.server.record(self.command, target, "Authorization" in self.headers)
        parts = urlsplit(target)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            connection.request(self.command, path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_ENV + CA_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def proxy() -> Iterator[Forwarder]:
    server = Forwarder()
    thread = serve(server)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=WAIT_S)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_front(sandbox, certificate) -> Iterator[str]:
    """https://127.0.0.1:<port> in front of the sandbox's API (its files stay on plain http)."""
    cert, key = certificate
    server = Forwarder(upstream=sandbox.base_url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = serve(server)
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=WAIT_S)


def full_run(base_url: str) -> tuple[str, int]:
    settings = api.Settings(api_key=TEST_KEY, base_url=base_url)
    with api.GrokClient(settings, poll=FAST_POLL) as client:
        task_id = client.create_text_to_image("a lantern in the fog")
        task = client.wait(task_id, timeout=WAIT_S)
        blob = client.download(task.result_urls[0])
    return task_id, blob.size


def test_http_proxy_is_honoured_for_api_calls_and_downloads(sandbox, proxy, clean_env):
    clean_env.setenv("HTTP_PROXY", proxy.url)
    task_id, size = full_run(sandbox.base_url)
    assert size > 0
    api_calls = [s for s in proxy.seen if s.target.startswith(sandbox.base_url)]
    file_calls = [s for s in proxy.seen if s.target.startswith(sandbox.file_base_url)]
    assert any(s.method == "POST" for s in api_calls)
    assert any(s.method == "GET" and task_id in s.target for s in api_calls)
    assert all(s.had_authorization for s in api_calls)
    assert len(file_calls) == 1 and not file_calls[0].had_authorization


def test_no_proxy_is_honoured(sandbox, clean_env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    clean_env.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert full_run(sandbox.base_url)[1] > 0


def test_broken_proxy_is_reported_as_a_local_proxy_problem(sandbox, clean_env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    settings = api.Settings(api_key=TEST_KEY, base_url=sandbox.base_url)
    with (
        api.GrokClient(settings, poll=FAST_POLL) as client,
        pytest.raises(errors.NetworkError) as e,
    ):
        client.create_text_to_image("a lantern in the fog")
    assert not isinstance(e.value, errors.UncertainCreateError)
    assert "proxy" in str(e.value).lower() and "HTTP_PROXY" in str(e.value)
    assert sandbox.create_requests == 0


def test_untrusted_certificate_is_a_tls_error_naming_the_fix(tls_front, clean_env):
    settings = api.Settings(api_key=TEST_KEY, base_url=tls_front)
    with api.GrokClient(settings, poll=FAST_POLL) as client:
        with pytest.raises(errors.NetworkError) as on_create:
            client.create_text_to_image("a lantern in the fog")
        with pytest.raises(errors.NetworkError) as on_read:
            client.get_task("sbx0000000000000000_grok")
    for caught in (on_create, on_read):
        assert "TLS" in str(caught.value) and "REQUESTS_CA_BUNDLE" in str(caught.value)
        assert TEST_KEY not in str(caught.value)
    assert not isinstance(on_create.value, errors.UncertainCreateError)


def test_requests_ca_bundle_is_honoured(sandbox, tls_front, certificate, clean_env):
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    assert full_run(tls_front)[1] > 0
    assert sandbox.ledger(TEST_KEY).creates == 1


def test_https_proxy_tunnels_to_the_api(sandbox, tls_front, certificate, proxy, clean_env):
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    full_run(tls_front)
    tunnels = [s for s in proxy.seen if s.method == "CONNECT"]
    assert tunnels and all(s.target == tls_front.removeprefix("https://") for s in tunnels)
    assert sandbox.ledger(TEST_KEY).creates == 1
