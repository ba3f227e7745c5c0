"""The API listener: create a task, read its status (and, on a single origin, its files)."""

from __future__ import annotations

from . import file_host
from .http_base import Handler
from .shapes import echo_key, not_found_payload, status_payload
from .validation import parse_create
from .wire import ApiError, created_body, injected_error

CREATE_PATH = "/api/v1/images/generations"
TASK_PREFIX = "/api/v1/tasks/"
LEDGER_PATH = "/sandbox/ledger"
"""The sandbox's own page (no such route at the real API): what each key was charged, as JSON.
With ``Authorization: Bearer <key>`` only that key's account, else every account."""

_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_BROKEN_JSON = b'{"code": 200, "message": "success", "data": {"task_id": "'
_ERROR_IN_BODY = {"code": 500, "msg": "Internal error, please try again later", "data": None}


class ApiHandler(Handler):
    def route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if path == CREATE_PATH:
            self._require(method, "POST")
            self._create()
        elif path == LEDGER_PATH:
            self._require(method, "GET")
            key = self.bearer_key()
            if key is not None and not self.sandbox.store.knows_key(key):
                raise ApiError(401, "Invalid API key")
            self.send_json(200, self.sandbox.store.ledger_report(key))
        elif path.startswith(TASK_PREFIX) and len(path) > len(TASK_PREFIX):
            self._require(method, "GET")
            self._status_read(path[len(TASK_PREFIX) :])
        elif path.startswith(file_host.FILES_PREFIX) and not self.sandbox.config.separate_file_host:
            file_host.serve_file(self, method)
        else:
            raise ApiError(404, f"No such endpoint: {path}")

    @staticmethod
    def _require(method: str, allowed: str) -> None:
        if method != allowed:
            raise ApiError(405, f"Method {method} not allowed here; use {allowed}")

    def _authenticate(self) -> str:
        key = self.bearer_key()
        if key is None:
            raise ApiError(401, "Missing API key: send the header 'Authorization: Bearer <key>'")
        if not key or not self.sandbox.store.knows_key(key):
            raise ApiError(401, "Invalid API key")
        return key

    def _create(self) -> None:
        sandbox = self.sandbox
        sandbox.note_create_request()
        injected = sandbox.take_create_fault()
        if injected is not None:
            raise injected_error(injected, sandbox.faults.retry_after)
        key = self._authenticate()
        request = parse_create(self.read_json_body())
        task_id = sandbox.accept(key, request)
        delay = sandbox.faults.create_response_delay
        # The task is accepted and charged; only the answer is late (and lost if we stop now).
        if delay > 0 and sandbox.wait_unless_stopping(delay):
            self.close_connection = True
            return
        self.send_json(200, created_body(task_id))

    def _status_read(self, task_id: str) -> None:
        sandbox = self.sandbox
        fault = sandbox.take_status_fault()
        if fault is not None:
            sandbox.store.count_read(task_id)
            self._answer_fault(fault)
            return
        key = self._authenticate()
        shape = sandbox.faults.response_shape
        try:
            info = sandbox.store.read_status(task_id, key)
        except ApiError as refusal:
            alternative = not_found_payload(shape, task_id) if refusal.status == 404 else None
            if alternative is None:
                raise
            self.send_json(*alternative)
            return
        view = sandbox.view(info)
        if sandbox.faults.echo_key:
            view = echo_key(view, key)
        self.send_json(200, status_payload(shape, view))

    def _answer_fault(self, fault: int | str) -> None:
        if isinstance(fault, int):
            raise injected_error(fault, self.sandbox.faults.retry_after)
        if fault == "malformed_json":
            self.send_bytes(200, _BROKEN_JSON, "application/json")
        elif fault == "html_error":
            self.send_bytes(502, _HTML_502, "text/html")
        else:  # error_in_body
            self.send_json(200, _ERROR_IN_BODY)
