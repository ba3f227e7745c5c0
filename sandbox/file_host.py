"""Result files, and every way a CDN has been seen to hand them out badly.

Files are public (no key needed), as the provider's result URLs are. Each request is recorded with
whether it carried an ``Authorization`` header, so tests can prove the client never sends the key
to another origin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from . import bad_files, images
from .faults import DOWNLOAD_FAULTS
from .http_base import Handler
from .shapes import COMPLETED
from .wire import ApiError

FILES_PREFIX = "/files/"
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}

_STATUS_FAULTS = {
    "expired": ApiError(410, "Gone: this result URL has expired"),
    "forbidden": ApiError(403, "Forbidden"),
    "missing": ApiError(404, "Not found"),
    "unavailable": ApiError(503, "Service temporarily unavailable"),
}


class FileHandler(Handler):
    def route(self, method: str) -> None:
        serve_file(self, method)


def file_path(task_id: str, index: int, extension: str) -> str:
    return f"{FILES_PREFIX}{task_id}/{index}.{extension}"


def serve_file(handler: Handler, method: str) -> None:
    """One file request: the switched-on download fault answers, else the file itself."""
    sandbox = handler.sandbox
    path = handler.path.split("?", 1)[0]
    sandbox.record_file_request(path, handler.headers.get("Authorization") is not None)
    if method != "GET":
        raise ApiError(405, f"Method {method} not allowed here; use GET")
    fault = sandbox.faults.download
    only = sandbox.faults.download_only_index
    if fault is not None and only is not None and _index_of(path) != only:
        fault = None  # the fault hits one file of the task; the others are served whole
    if fault in _BEFORE_LOOKUP:
        _BEFORE_LOOKUP[fault](handler)
        return

    task_id, index, extension = _parse(path)
    info = sandbox.store.get(task_id)
    if info is None or info.state != COMPLETED or index >= info.image_count:
        raise ApiError(404, "Not found")
    if extension != sandbox.file_extension(info):
        raise ApiError(404, "Not found")
    if sandbox.expired(info):
        raise ApiError(410, "Gone: this result URL has expired")

    content_type = CONTENT_TYPES[extension]
    if fault in _INSTEAD_OF_THE_FILE:
        _INSTEAD_OF_THE_FILE[fault](handler, content_type)
        return
    body = sandbox.image_bytes(info, index)
    answer = _WITH_THE_FILE.get(fault or "", _send_whole)
    answer(handler, body, content_type)


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


def _refuse(error: ApiError) -> Callable[[Handler], None]:
    def answer(handler: Handler) -> None:
        raise error

    return answer


def _redirect_to_a_file_url(handler: Handler) -> None:
    handler.send_bytes(302, b"", "text/plain", {"Location": "file:///etc/passwd"})


def _send(
    body: Callable[[], bytes], content_type: str | None = None
) -> Callable[[Handler, str], None]:
    """An answer of ``body()`` (a fixed bad file), as the file's own type unless one is given."""

    def answer(handler: Handler, file_type: str) -> None:
        handler.send_bytes(200, body(), content_type or file_type)

    return answer


def _send_whole(handler: Handler, body: bytes, content_type: str) -> None:
    handler.send_bytes(200, body, content_type)


def _send_cut_image(handler: Handler, body: bytes, content_type: str) -> None:
    handler.send_bytes(200, bad_files.truncated(body), content_type)


# Each download fault answers at one of three points (see DOWNLOAD_FAULTS for what each is):
_BEFORE_LOOKUP: dict[str | None, Callable[[Handler], None]] = {
    "silent": _stay_silent,
    "redirect_scheme": _redirect_to_a_file_url,
    **{name: _refuse(error) for name, error in _STATUS_FAULTS.items()},
}
"""...before the task is looked up: whatever the URL names."""
_INSTEAD_OF_THE_FILE: dict[str | None, Callable[[Handler, str], None]] = {
    "bomb": _send(images.decompression_bomb, "image/png"),
    "not_image": _send(lambda: images.NOT_AN_IMAGE),  # a lying Content-Type
    "oversized": functools.partial(_send_endless, announce=True),
    "oversized_unannounced": functools.partial(_send_endless, announce=False),
    "huge_header": _send(bad_files.huge_header_png, "image/png"),
    "empty": _send(lambda: b""),
    **{
        name: _send(functools.partial(bad_files.garbage_after_magic, name.removeprefix("garbage_")))
        for name in DOWNLOAD_FAULTS
        if name.startswith("garbage_")
    },
}
"""...for a file that exists, instead of it."""
_WITH_THE_FILE: dict[str, Callable[[Handler, bytes, str], None]] = {
    "truncated_image": _send_cut_image,
    "short_length": _send_short_length,
    "slow": _send_dripping,
    "truncate": _send_truncated,
}
"""...with the file's own bytes, sent badly."""
