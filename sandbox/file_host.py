"""Result files, and every way a CDN has been seen to hand them out badly.

Files are public (no key needed), as the provider's result URLs are. Each request is recorded with
whether it carried an ``Authorization`` header, so tests can prove the client never sends the key
to another origin.
"""

from __future__ import annotations

from . import bad_files, images
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
    only = sandbox.faults.download_only_index
    if fault is not None and only is not None and _index_of(path) != only:
        fault = None  # the fault hits one file of the task; the others are served whole
    if fault == "silent":
        _stay_silent(handler)
        return
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
    if fault == "huge_header":
        handler.send_bytes(200, bad_files.huge_header_png(), "image/png")
        return
    if fault is not None and fault.startswith("garbage_"):
        kind = fault.removeprefix("garbage_")
        handler.send_bytes(200, bad_files.garbage_after_magic(kind), CONTENT_TYPES[extension])
        return
    if fault == "empty":
        handler.send_bytes(200, b"", CONTENT_TYPES[extension])
        return

    body = sandbox.image_bytes(info, index)
    if fault == "truncated_image":
        handler.send_bytes(200, bad_files.truncated(body), CONTENT_TYPES[extension])
    elif fault == "short_length":
        _send_short_length(handler, body, CONTENT_TYPES[extension])
    elif fault == "slow":
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


def _index_of(path: str) -> int | None:
    stem = path.rsplit("/", 1)[-1].partition(".")[0]
    return int(stem) if stem.isdigit() else None


def _stay_silent(handler: Handler) -> None:
    """Accept, read the request, answer nothing until the client gives up or the sandbox stops."""
    import select
    import socket

    handler.close_connection = True
    connection = handler.connection
    while not handler.sandbox.stopping:
        try:
            readable, _, _ = select.select([connection], [], [], 0.05)
            if readable and not connection.recv(1, socket.MSG_PEEK):
                return  # the client hung up
        except (OSError, ValueError):
            return


def _send_short_length(handler: Handler, body: bytes, content_type: str) -> None:
    """A Content-Length smaller than the body: a client trusting it reads a cut-short image."""
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body) * 3 // 5))
    handler.end_headers()
    try:
        handler.wfile.write(body)
        handler.wfile.flush()
    except OSError:
        pass  # the client stopped reading where the length said the body ends
    handler.close_connection = True


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
