"""Fetching result files: streamed, capped, verified, and never with the API key.

Result URLs point at the provider's file host (a CDN, another origin). They are fetched with a
session of their own that carries no ``Authorization`` header; the client adds the key only for a
URL on the API's own origin, and ``requests`` drops it again on a redirect to any other host.

Each file is bounded three ways: connect/read timeouts per socket operation, an overall deadline
(a server dripping a byte a second cannot hold a node for an hour), and a size cap enforced while
streaming (memory stays bounded whatever Content-Length says or omits). The bytes must *be* an
image by their magic numbers (JPEG, PNG, WEBP, GIF), whatever the Content-Type claims; a video
(the upscale model has been described as a video upscaler) is named as such.

Transient failures (connection errors, timeouts, a body shorter than its Content-Length,
408/425/429/5xx) are tried again as ``retries.RESULT_FILE`` says (3 requests in all, within the
deadline, ``Retry-After`` honoured up to 4 s; the session itself retries nothing, so the count
in the message is the count of requests); 403/404/410 mean the URL has expired
(they last hours to days) and are not retried. A body that is still empty after the retries is a
permanent failure of that file (``NotAnImageError``): the host has nothing to give. A host that
takes the connection and never answers is named as such ("did not answer within N s"). Redirects
are followed only to http(s) addresses, at most five. A URL is never shown or logged with its
query, its userinfo, or a key the server echoed into it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from urllib3 import exceptions as u3
from urllib3.exceptions import HTTPError as Urllib3Error

from . import errors
from .http_errors import exception_chain
from .messages import Fact, Message, english, said
from .retries import RESULT_FILE
from .transport import make_session, parse_retry_after
from .what import What

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Downloaded",
    "download",
    "make_download_session",
    "non_image",
    "sniff_image_format",
]

logger = logging.getLogger("grok_imagine.api")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 16 * 1024
SNIFF_BYTES = 32
MAX_REDIRECTS = 5
EXPIRED_STATUSES = frozenset({403, 404, 410})


@dataclass(frozen=True)
class Downloaded:
    """One result file: its bytes (kept out of repr), what the server called it, what it is."""

    url: str
    data: bytes = field(repr=False)
    content_type: str | None
    image_format: str
    """``"JPEG"``, ``"PNG"``, ``"WEBP"`` or ``"GIF"``, from the bytes themselves."""

    @property
    def size(self) -> int:
        return len(self.data)


def sniff_image_format(data: bytes) -> str | None:
    """The image format by magic bytes, or None when the bytes are not a supported image."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def non_image(data: bytes) -> What:
    """What the bytes look like instead, as the kind that words it."""
    if not data:
        return What.AN_EMPTY_FILE
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return What.AN_AVIF
        return What.AN_MP4
    if data[:4] == b"\x1aE\xdf\xa3":
        return What.A_WEBM
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return What.AN_AVI
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or head[:1] == b"<":
        return What.A_WEB_PAGE
    if head[:1] in (b"{", b"["):
        return What.A_JSON_DOCUMENT
    if data[:4] == b"%PDF":
        return What.A_PDF
    return What.SOMETHING_ELSE


def make_download_session() -> requests.Session:
    """A session for file hosts: no credentials of ours, ever, and no retries of its own
    (``download`` tries a file as ``retries.RESULT_FILE`` says)."""
    session = make_session()
    session.max_redirects = MAX_REDIRECTS
    return session


def download(
    url: str,
    session: requests.Session,
    *,
    timeouts: tuple[float, float] = (10.0, 30.0),
    deadline_s: float = 300.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    attempts: int = RESULT_FILE.attempts,
    headers: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Downloaded:
    """Fetch one result file; raises ``DownloadError`` or one of its kinds, nothing else.

    The file is requested at most ``attempts`` times in all (each try is one request): a
    passing failure is tried again after ``RESULT_FILE``'s backoff while the deadline allows."""
    shown = _shown(url)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise errors.DownloadError(said(What.RESULT_NOT_HTTP, url=repr(shown)))
    fetch = _Fetch(
        _without_echoed_key_userinfo(url),
        shown,
        session,
        timeouts,
        time.monotonic() + deadline_s,
        deadline_s,
        max_bytes,
        dict(headers or {}),
    )
    failures = 0
    while True:
        try:
            return _fetch_once(fetch)
        except _Transient as exc:
            failures += 1
            wait = RESULT_FILE.wait(failures, exc.retry_after)
            if failures >= attempts or fetch.deadline - time.monotonic() <= wait:
                raise _gave_up(shown, failures, exc) from None
            logger.info(
                "download of %s failed (%s); retrying in %.1f s", shown, english(exc.reason), wait
            )
            sleep(wait)


def _gave_up(shown: str, tries: int, last: _Transient) -> errors.DownloadError:
    if last.empty:
        return errors.NotAnImageError(said(What.RESULT_EMPTY, url=shown, tries=tries))
    return errors.DownloadError(
        said(What.DOWNLOAD_GAVE_UP, url=shown, tries=tries, reason=last.reason)
    )


class _Transient(Exception):
    def __init__(
        self, reason: Message, *, empty: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(english(reason))
        self.reason = reason
        self.empty = empty
        """The host answered 200 with no body at all (permanent once the retries agree)."""
        self.retry_after = retry_after
        """The host's ``Retry-After``, in seconds, when it sent one."""


@dataclass(frozen=True)
class _Fetch:
    """One file to fetch, and the bounds every try of it keeps."""

    url: str
    shown: str
    session: requests.Session
    timeouts: tuple[float, float]
    deadline: float
    """``time.monotonic()`` by which the whole download, retries included, must end."""
    deadline_s: float
    max_bytes: int
    headers: dict[str, str]


def _fetch_once(fetch: _Fetch) -> Downloaded:
    """One request for the file: its bytes, verified, or a typed error / ``_Transient``."""
    started = time.perf_counter()
    response = _open(fetch)
    with response:
        status = response.status_code
        logger.debug("GET %s -> %d in %.3f s", fetch.shown, status, time.perf_counter() - started)
        _check_status(response, fetch.shown)
        announced = _content_length(response)
        if announced is not None and announced > fetch.max_bytes:
            raise _too_large(fetch.shown, announced, fetch.max_bytes)
        data = _read_capped(response, fetch)
    if not data:
        raise _Transient(said(What.HOST_SENT_EMPTY), empty=True)
    if announced is not None and len(data) < announced:  # urllib3 1.x does not check this
        raise _Transient(said(What.HOST_SENT_PART, got=len(data), announced=announced))
    image_format = _require_image(data, fetch.shown)
    logger.debug("downloaded %s: %d bytes, %s", fetch.shown, len(data), image_format)
    return Downloaded(
        url=fetch.url,
        data=data,
        content_type=response.headers.get("Content-Type"),
        image_format=image_format,
    )


def _open(fetch: _Fetch) -> requests.Response:
    """The response, its body not read yet; redirects followed to http(s) only."""
    try:
        return fetch.session.get(
            fetch.url,
            stream=True,
            timeout=fetch.timeouts,
            headers=fetch.headers,
            allow_redirects=True,
            hooks={"response": _refuse_odd_redirects},
        )
    except requests.TooManyRedirects:
        raise errors.DownloadError(
            said(What.TOO_MANY_REDIRECTS, url=fetch.shown, most=MAX_REDIRECTS)
        ) from None
    except (
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
    ):
        raise errors.DownloadError(said(What.REDIRECT_NOT_FOLLOWED, url=fetch.shown)) from None
    except requests.RequestException as exc:
        raise _Transient(_network_reason(exc, fetch.timeouts)) from None


def _check_status(response: requests.Response, shown: str) -> None:
    """Nothing for HTTP 200; else the error its status means (expired, passing, or odd)."""
    status = response.status_code
    if status in EXPIRED_STATUSES:
        raise errors.ResultExpiredError(
            said(What.RESULT_GONE, url=shown, status=status), status=status
        )
    if status in RESULT_FILE.statuses:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise _Transient(said(What.HOST_ANSWERED, status=status), retry_after=retry_after)
    if status != 200:
        raise errors.DownloadError(
            said(What.FILE_HOST_STATUS, status=status, url=shown),
            advice=errors.Advice.RETRY_LATER,
        )


def _read_capped(response: requests.Response, fetch: _Fetch) -> bytes:
    """The body, read as it arrives: checked to start like an image, cut off past the size cap,
    given up past the deadline."""
    buffer = bytearray()
    checked = False
    try:
        for chunk in _body_chunks(response, fetch.timeouts):
            buffer += chunk
            if len(buffer) > fetch.max_bytes:
                raise _too_large(fetch.shown, None, fetch.max_bytes)
            if not checked and len(buffer) >= SNIFF_BYTES:
                _require_image(bytes(buffer[:SNIFF_BYTES]), fetch.shown)
                checked = True
            if time.monotonic() > fetch.deadline:
                seconds = f"{fetch.deadline_s:g}"
                raise errors.DownloadError(
                    said(What.DOWNLOAD_TOO_SLOW, url=fetch.shown, seconds=seconds, got=len(buffer)),
                    advice=errors.Advice.RETRY_LATER,
                )
    except requests.RequestException as exc:
        raise _Transient(_network_reason(exc, fetch.timeouts)) from None
    return bytes(buffer)


def _body_chunks(response: requests.Response, timeouts: tuple[float, float]) -> Iterator[bytes]:
    """The body as it arrives: each chunk is whatever the socket had (up to ``CHUNK_BYTES``), so
    the caller's deadline check runs after every trickle, not once per filled 16 KiB buffer."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 < 2: no read1; small chunks keep the deadline check frequent
        yield from response.iter_content(1024)
        return

    while True:
        try:
            chunk = read1(CHUNK_BYTES, decode_content=True)
        except (Urllib3Error, OSError) as exc:
            raise _Transient(_network_reason(exc, timeouts)) from None
        if not chunk:
            return
        yield chunk


def _require_image(data: bytes, shown: str) -> str:
    image_format = sniff_image_format(data)
    if image_format is None:
        looks_like = said(non_image(data))
        raise errors.NotAnImageError(said(What.RESULT_NOT_IMAGE, url=shown, looks_like=looks_like))
    return image_format


def _too_large(shown: str, size: int | None, max_bytes: int) -> errors.TooLargeError:
    mib = max_bytes / (1024 * 1024)
    announced: Fact = said(What.ANNOUNCED, mib=f"{size / (1024 * 1024):.0f}") if size else ""
    return errors.TooLargeError(
        said(What.RESULT_TOO_LARGE, url=shown, mib=f"{mib:g}", announced=announced)
    )


def _refuse_odd_redirects(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A response hook: stop before following a redirect to anything but http(s)."""
    if response.is_redirect:
        target = urljoin(response.url, response.headers.get("Location", ""))
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            response.close()
            scheme: Fact = urlsplit(target).scheme or said(What.NO_SCHEME)
            raise errors.DownloadError(
                said(What.REDIRECT_SCHEME, url=_shown(response.url), scheme=scheme)
            )


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        size = int(value.strip())
    except ValueError:
        return None
    return size if size >= 0 else None


def _network_reason(exc: BaseException, timeouts: tuple[float, float]) -> Message:

    # requests may wrap a timeout in a ConnectionError (urllib3's MaxRetryError): look down the
    # chain.
    chain = list(exception_chain(exc))

    def has(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(requests.ConnectTimeout, u3.ConnectTimeoutError) and not has(
        requests.ReadTimeout, u3.ReadTimeoutError
    ):
        return said(What.HOST_CONNECT_TIMEOUT, seconds=f"{timeouts[0]:g}")
    if has(requests.ReadTimeout, u3.ReadTimeoutError, TimeoutError, socket.timeout):
        return said(What.HOST_READ_TIMEOUT, seconds=f"{timeouts[1]:g}")
    if isinstance(exc, (u3.ProtocolError, u3.IncompleteRead)):
        return said(What.HOST_CUT_OFF)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return said(What.HOST_CUT_OFF)
    if isinstance(exc, requests.exceptions.SSLError):
        return said(What.HOST_TLS)
    if isinstance(exc, requests.exceptions.ProxyError):
        return said(What.HOST_PROXY)
    if isinstance(exc, requests.ConnectionError):
        return said(What.HOST_UNREACHABLE)
    return said(What.CAUSE_OTHER, name=type(exc).__name__)


def _without_echoed_key_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` when that userinfo holds a key of ours: requests
    would send it to the file host (another origin) as Basic credentials."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or errors.redact(userinfo) == userinfo:
        return url
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _shown(url: str) -> str:
    """The URL without its query (signed URLs carry tokens), credentials or an echoed key."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        pass
    shown = f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path[:200]
    return errors.redact(shown)
