"""Fault switches: every way the real API (or its file host) has been seen to misbehave.

All switches are off by default and may be flipped while the server runs. Reads of a single field
are atomic in Python; the server consumes the queues and counters (``status_errors``,
``malformed_json``, ...) under its own lock, so concurrent requests never take the same fault twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .shapes import SHAPES

DOWNLOAD_FAULTS: tuple[str, ...] = (
    "slow",  # the body drips out drip_chunk bytes every drip_delay seconds
    "truncate",  # Content-Length promises the whole file, half arrives, the connection closes
    "not_image",  # an HTML page served as image/jpeg (a lying Content-Type)
    "oversized",  # a huge body, its size announced in Content-Length
    "oversized_unannounced",  # a huge body with no Content-Length (read until close)
    "bomb",  # a small, valid PNG that decodes to hundreds of megapixels
    "huge_header",  # a valid PNG whose header declares 9000 x 9000 (81 megapixels)
    "truncated_image",  # a JPEG/PNG cut at 60 %, served whole (Content-Length matches)
    "garbage_png",  # PNG magic bytes, then noise
    "garbage_gif",  # GIF magic bytes, then noise
    "garbage_webp",  # RIFF....WEBP, then noise
    "garbage_jpeg",  # JPEG magic bytes, then noise
    "short_length",  # Content-Length announces 60 % of the file; the whole file is sent
    "empty",  # HTTP 200 with a 0-byte body
    "silent",  # the connection is accepted and the request read; no answer ever comes
    "redirect_scheme",  # 302 to file:///etc/passwd
    "expired",  # 410
    "forbidden",  # 403
    "missing",  # 404
    "unavailable",  # 503, every time (a file host that is down)
)


@dataclass
class Faults:
    failure_rate: float = 0.0  # fraction of new tasks that end failed (and refunded)
    moderation_word: str | None = "forbidden"  # prompts containing it fail on content policy
    create_errors: list[int] = field(default_factory=list)  # next creates answer these statuses
    status_errors: list[int] = field(default_factory=list)  # next status reads answer these
    retry_after: int = 1  # Retry-After seconds sent with injected 429s
    stuck: bool = False  # new tasks never finish
    malformed_json: int = 0  # next N status reads answer broken JSON
    html_error: int = 0  # next N status reads answer an HTML 502 page
    error_in_body: int = 0  # next N status reads answer HTTP 200 with {"code": 500, "msg": ...}
    create_response_delay: float = 0.0  # accept the create, then wait this long before answering
    response_shape: str = "default"  # one of SHAPES
    download: str | None = None  # one of DOWNLOAD_FAULTS
    download_only_index: int | None = None  # the download fault hits only this file index
    echo_key: bool = False  # status reads echo the caller's key in result URLs and the status
    drip_delay: float = 0.2  # seconds between chunks for download="slow"
    drip_chunk: int = 4096  # bytes per chunk for download="slow"
    oversized_bytes: int = 256 * 1024 * 1024  # body size for the oversized download faults

    def __setattr__(self, name: str, value: Any) -> None:
        # Refuse a misspelt shape or download fault when it is set, not on some later request.
        if name == "response_shape" and value not in SHAPES:
            raise ValueError(f"unknown response_shape {value!r}; known: {', '.join(SHAPES)}")
        if name == "download" and value is not None and value not in DOWNLOAD_FAULTS:
            known = ", ".join(DOWNLOAD_FAULTS)
            raise ValueError(f"unknown download fault {value!r}; known: {known}")
        if name == "failure_rate" and not 0.0 <= value <= 1.0:
            raise ValueError("failure_rate is a fraction between 0 and 1")
        super().__setattr__(name, value)
