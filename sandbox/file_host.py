"""Result files, and every way a CDN has been seen to hand them out badly.

Files are public (no key needed), as the provider's result URLs are. Each request is recorded with
whether it carried an ``Authorization`` header, so tests can prove the client never sends the key
to another origin.
"""

from __future__ import annotations

from . import images
from .http_base import Handler
from .shapes import COMPLETED
from .wire import ApiError

FILES_PREFIX = "/files/"
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}

_STATUS_FAULTS = {
    "expired": ApiError(410, "Gone: this result URL has expired"),
    "forbidden": ApiError(403, "Forbidden"),
    "missing": ApiError(404, "Not found"),
}


class FileHandler(Handler):
    def route(self, method: str) -> None:
        serve_file(self, method)


def file_path(task_id: str, index: int, extension: str) -> str:
    return f"{FILES_PREFIX}{task_id}/{index}.{extension}"


def serve_file(handler: Handler, method: str) -> None:
    sandbox = handler.sandbox
    path = handler.path.split("?", 1)[0]
    sandbox.record_file_request(path, handler.headers.get("Authorization") is not None)
    if method != "GET":
        raise ApiError(405, f"Method {method} not allowed here; use GET")
    fault = sandbox.faults.download
    if fault in _STATUS_FAULTS:
        raise _STATUS_FAULTS[fault]
    if fault == "redirect_scheme":
        handler.send_bytes(302, b"", "text/plain", {"Location": "file:///etc/passwd"})
        return

    task_id, index, extension = _parse(path)
    info = sandbox.store.get(task_id)
    if info is None or info.state != COMPLETED or index >= info.image_count:
        raise ApiError(404, "Not found")
    if extension != sandbox.file_extension(info):
        raise ApiError(404, "Not found")
    if sandbox.expired(info):
        raise ApiError(410, "Gone: this result URL has expired")

    if fault == "bomb":
        handler.send_bytes(200, images.decompression_bomb(), "image/png")
        return
    if fault == "not_image":  # a lying Content-Type: only the bytes tell the truth
        handler.send_bytes(200, images.NOT_AN_IMAGE, CONTENT_TYPES[extension])
        return
    if fault in ("oversized", "oversized_unannounced"):
        _send_endless(handler, CONTENT_TYPES[extension], announce=fault == "oversized")
        return

    body = sandbox.image_bytes(info, index)
    if fault == "slow":
        _send_dripping(handler, body, CONTENT_TYPES[extension])
    elif fault == "truncate":
        _send_truncated(handler, body, CONTENT_TYPES[extension])
    else:
        handler.send_bytes(200, body, CONTENT_TYPES[extension])


def _parse(path: str) -> tuple[str, int, str]:
    rest = path[len(FILES_PREFIX) :]
    task_id, _, name = rest.partition("/")
    stem, _, extension = name.partition(".")
    if not task_id or not stem.isdigit() or extension not in CONTENT_TYPES:
        raise ApiError(404, "Not found")
    return task_id, int(stem), extension


def _send_dripping(handler: Handler, body: bytes, content_type: str) -> None:
    faults = handler.sandbox.faults
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    chunk = max(1, faults.drip_chunk)
    for start in range(0, len(body), chunk):
        handler.wfile.write(body[start : start + chunk])
        handler.wfile.flush()
        if start + chunk < len(body) and handler.sandbox.wait_unless_stopping(faults.drip_delay):
            handler.close_connection = True
            return


def _send_truncated(handler: Handler, body: bytes, content_type: str) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    handler.close_connection = True  # the promised rest never comes


def _send_endless(handler: Handler, content_type: str, announce: bool) -> None:
    """A JPEG-looking body of ``faults.oversized_bytes``, sent until done or the client quits."""
    size = handler.sandbox.faults.oversized_bytes
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    if announce:
        handler.send_header("Content-Length", str(size))
    else:
        handler.send_header("Connection", "close")  # the body ends when the connection does
    handler.end_headers()
    handler.close_connection = not announce
    block = 64 * 1024
    first = b"\xff\xd8\xff\xe0" + bytes(block - 4)  # starts like a JPEG
    zeros = bytes(block)
    sent = 0
    while sent < size and not handler.sandbox.stopping:
        piece = (zeros if sent else first)[: size - sent]
        handler.wfile.write(piece)
        sent += len(piece)
