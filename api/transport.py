"""HTTP for the API calls: one ``requests`` session, timeouts, retries, and error mapping.

Retry policy (never pay twice):

* **Status reads** (``GET``) are idempotent. urllib3's ``Retry`` (mounted on the session) retries
  them on connection errors, read errors, 408, 429, 455, 500, 502, 503 and 504 with exponential
  backoff and jitter, a couple of times, honouring ``Retry-After`` up to a short cap. Whatever
  still fails is raised as a typed error, and the wait loop in ``polling`` keeps retrying those
  that pass (so a long ``Retry-After`` is slept there, where Cancel is still checked).
* **Creates** (``POST``) cost money and are re-sent only when the server provably did not take
  them: the connection could not be opened (refused, DNS, connect timeout, proxy, TLS handshake;
  urllib3 retries those for any method), or the answer was HTTP 429 (rate limited: nothing
  created). 429 is retried honouring ``Retry-After`` for at most ``Settings.rate_limit_wait``
  seconds in total, then ``RateLimitedError`` says how long to wait. A create whose request went
  out but whose answer did not come back (read timeout, connection reset, truncated answer) is
  *never* re-sent: ``UncertainCreateError`` is raised so the journal can record it and the user
  can decide.
* Redirects are not followed for API calls (a POST would turn into a GET); a 3xx says which
  address to configure instead.

Error mapping: the HTTP status, else an error ``code`` in a 200 body (``{"code": 401, ...}``),
becomes one of ``errors``' classes with a message saying what to do. ``requests``/urllib3
exceptions become ``NetworkError`` naming the local cause (DNS, refused, reset, TLS, proxy,
timeout) with no traceback chained in. Messages never hold the key: the Authorization header is
set per request (never on the session, so no other host can receive it), nothing logs headers,
and every message goes through ``errors.redact``. DEBUG log lines (logger ``grok_imagine.api``)
carry method, path, status and elapsed time only.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import math
import random
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as u3
from urllib3.util.retry import Retry

from . import errors, redaction
from .config import Settings
from .env import BASE_URL_ENV
from .task_reader import body_error

__all__ = [
    "API_RETRY_STATUSES",
    "Call",
    "Transport",
    "make_session",
    "map_api_error",
    "network_error",
    "origin_of",
    "parse_retry_after",
]

logger = logging.getLogger("grok_imagine.api")

USER_AGENT = (
    "ComfyUI-Grok-Imagine/0.1 (+https://github.com/grok-imagine-nodes/ComfyUI-Grok-Imagine)"
)
API_RETRY_STATUSES = frozenset({408, 429, 455, 500, 502, 503, 504})
RETRY_AFTER_CAP_S = 1.0
"""Longest ``Retry-After`` urllib3 sleeps inside one call; longer waits happen in the poll loop,
where Cancel is still checked."""
CANCEL_SLICE_S = 0.1
"""Longest sleep between Cancel checks while a rate-limited create waits to be re-sent."""
MAX_ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Call:
    """What an API call is for, so an error can say something specific."""

    kind: str  # "create" or "status"
    task_id: str | None = None
    """For a status read: the task read. For an upscale create: the source task."""
    model: str | None = None


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in: two URLs with equal origins share
    credentials, any other pair does not."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def make_session(
    *,
    statuses: frozenset[int] = API_RETRY_STATUSES,
    total: int = 3,
    backoff_factor: float = 0.1,
    backoff_max: float = 1.0,
) -> requests.Session:
    """A ``requests.Session`` with urllib3 retries for idempotent methods (GET/HEAD only).

    ``trust_env`` stays on: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` and
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` apply as for any ``requests`` user.
    """
    redaction.install()  # before the first request line is logged
    retry_class = _CappedRetry
    retry = retry_class(
        total=total,
        connect=min(2, total),
        read=min(2, total),
        status=min(2, total),
        other=0,
        redirect=False,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=statuses,
        backoff_factor=backoff_factor,
        raise_on_status=False,
        raise_on_redirect=False,
        respect_retry_after_header=True,
        **_supported(retry_class, backoff_max=backoff_max, backoff_jitter=backoff_factor),
    )
    session = requests.Session()
    session.trust_env = True
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=16)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class Transport:
    """JSON over HTTP to the API origin, with the retry policy of this module's docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        timeouts: tuple[float, float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.timeouts = timeouts or (settings.connect_timeout, settings.read_timeout)
        self._owns_session = session is None
        self.session = session if session is not None else make_session()
        self._sleep = sleep

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def url(self, path: str) -> str:
        return self.settings.base_url + path

    # -- calls ------------------------------------------------------------------------------------

    def get_json(self, path: str, call: Call) -> Any:
        """GET an API path and return its JSON; HTTP errors raised as typed errors."""
        response = self._send("GET", path, call)
        try:
            return self._json_of(response, call)
        finally:
            response.close()

    def post_json(
        self,
        path: str,
        body: dict[str, Any],
        call: Call,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Any:
        """POST a create; re-sent only on HTTP 429 (nothing created), within a bounded wait that
        Cancel (``should_cancel``) or Ctrl-C ends with ``CancelledError``: nothing was created."""
        give_up_at = time.monotonic() + max(0.0, self.settings.rate_limit_wait)
        attempt = 0
        while True:
            attempt += 1
            response = self._send("POST", path, call, json_body=body, passthrough=(429,))
            try:
                if response.status_code == 429:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    payload: Any = None
                else:
                    payload = self._json_of(response, call)
                    found = body_error(payload)
                    if found is None or found[0] != 429:
                        return payload
                    retry_after = _retry_after_in_body(payload)
            finally:
                response.close()
            backoff = min(8.0, 0.5 * 2 ** (attempt - 1))
            # Retry-After is a floor, not a licence: "0" (or a date already past) must not turn
            # a 429 storm into a tight loop of creates.
            wait = backoff if retry_after is None else max(retry_after, backoff)
            wait *= 1.0 + random.uniform(0.0, 0.1)  # many rate-limited clients must not resync
            if time.monotonic() + wait > give_up_at:
                raise _rate_limited(retry_after, creating=True)
            logger.info("create rate limited (HTTP 429); sending it again in %.1f s", wait)
            self._wait_before_resend(wait, should_cancel)

    def _wait_before_resend(self, seconds: float, should_cancel: Callable[[], bool] | None) -> None:
        """Sleep out a 429 in short slices: a Cancel here must not send a paid create later."""
        end = time.monotonic() + seconds
        try:
            while (left := end - time.monotonic()) > 0:
                if should_cancel is not None and should_cancel():
                    raise errors.CancelledError(None)
                self._sleep(min(left, CANCEL_SLICE_S))
        except KeyboardInterrupt:
            raise errors.CancelledError(None) from None

    # -- plumbing ---------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        call: Call,
        json_body: dict[str, Any] | None = None,
        passthrough: tuple[int, ...] = (),
    ) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {self.settings.api_key}",
            "Accept": "application/json",
        }
        started = time.perf_counter()
        try:
            response = self.session.request(
                method,
                self.url(path),
                headers=headers,
                json=json_body,
                timeout=self.timeouts,
                allow_redirects=False,
                stream=True,  # bodies are read with a cap below
            )
        except requests.RequestException as exc:
            logger.debug(
                "%s %s failed after %.3f s: %s",
                method,
                path,
                time.perf_counter() - started,
                type(exc).__name__,
            )
            raise network_error(exc, self.settings, call, self.timeouts) from None
        logger.debug(
            "%s %s -> %d in %.3f s",
            method,
            path,
            response.status_code,
            time.perf_counter() - started,
        )
        if response.status_code >= 300 and response.status_code not in passthrough:
            try:
                raise self._http_error(response, call)
            finally:
                response.close()
        return response

    def _read_body(self, response: requests.Response, call: Call, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(16 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
        except requests.RequestException as exc:
            raise network_error(
                exc, self.settings, call, self.timeouts, body_started=True
            ) from None
        return b"".join(chunks)[:limit]

    def _json_of(self, response: requests.Response, call: Call) -> Any:
        body = self._read_body(response, call, 8 * 1024 * 1024)
        try:
            return json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            pass
        what = (
            "an HTML page"
            if body.lstrip()[:1] == b"<"
            else ("an empty answer" if not body.strip() else "text that is not JSON")
        )
        if call.kind == "create":
            raise errors.BadResponseError(
                f"API in One answered the create request with {what} (HTTP "
                f"{response.status_code}), so it is unknown whether the task was created. Check "
                f"your API in One dashboard; if {BASE_URL_ENV} is set, check it points at the API."
            )
        raise errors.BadResponseError(
            f"API in One answered a status read with {what} (HTTP {response.status_code}): "
            f"usually a passing gateway problem; if it persists, check {BASE_URL_ENV}."
        )

    def _http_error(self, response: requests.Response, call: Call) -> errors.GrokError:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            target = _without_query(location) if location else "another address"
            return errors.ServerError(
                f"API in One answered with a redirect (HTTP {status}) to {target}: set "
                f"{BASE_URL_ENV} to the address the API really lives at.",
                status=status,
            )
        try:
            body = self._read_body(response, call, MAX_ERROR_BODY_BYTES)
        except errors.NetworkError:
            body = b""
        message = _message_from_body(body)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return map_api_error(status, message, call, self.settings, retry_after=retry_after)


# -- error mapping ---------------------------------------------------------------------------------

_NOT_FOUND_WORDS = ("recordinfo is null", "not found", "not exist", "no such task", "unknown task")
_FIELD_WORDS = (
    ("aspect_ratio", ("aspect_ratio", "aspect ratio", "aspectratio")),
    ("task_id", ("task_id", "task id", "taskid")),
    ("prompt", ("prompt",)),
    ("model", ("model",)),
)


def map_api_error(
    status: int,
    message: str,
    call: Call,
    settings: Settings,
    *,
    retry_after: float | None = None,
) -> errors.GrokError:
    """The typed error for an API refusal: an HTTP status, or an error ``code`` in a 200 body."""
    said = errors.one_line(errors.redact(message, (settings.api_key,)), limit=300)
    quoted = f": {said}" if said else ""
    lowered = said.lower()
    task = call.task_id

    if status == 401:
        return errors.AuthError(
            f"API in One did not accept the API key (HTTP 401{quoted}). The key in use comes "
            f"from {settings.key_source}."
        )
    if status == 403:
        return errors.AuthError(
            f"API in One refused this key access (HTTP 403{quoted}): check the key's permissions "
            "in your API in One dashboard, or use another key."
        )
    if status == 402:
        return errors.InsufficientCreditsError(
            f"Not enough API in One credits for this request (HTTP 402{quoted}); text-to-image "
            "costs 5 credits, upscale 12."
        )
    if status == 433:
        return errors.InsufficientCreditsError(
            f"This API key has reached its usage limit (HTTP 433, sub-key limit{quoted}): raise "
            "the key's limit in your API in One dashboard or use another key.",
            advice=errors.Advice.NONE,
        )
    if status == 429:
        return _rate_limited(retry_after, creating=call.kind == "create", said=said)
    if status == 404 or (status in (400, 422) and any(w in lowered for w in _NOT_FOUND_WORDS)):
        wrong_address = status == 404 and ("endpoint" in lowered or "route" in lowered)
        if not wrong_address and (call.kind == "status" or (call.kind == "create" and task)):
            return _not_found(call, f" (HTTP {status}{quoted})")
        return errors.ServerError(
            f"API in One answered {status} Not Found for the {call.kind} request{quoted}: check "
            "that "
            f"{BASE_URL_ENV} ({settings.base_url}) is the API's address.",
            status=status,
            advice=errors.Advice.NONE,
        )
    if status == 455:
        return errors.ServerError(
            f"API in One is under maintenance (HTTP 455{quoted}).",
            status=status,
        )
    if status in (400, 413, 422) or (400 <= status < 500 and status not in (405, 408)):
        field = _guess_field(lowered) or ("task_id" if call.kind == "status" else None)
        return errors.InvalidRequestError(
            f"API in One rejected the request (HTTP {status}{quoted}).",
            field=field,
            from_server=True,
        )
    if status == 501:
        return errors.TaskFailedError(task if call.kind == "status" else None, said or None)
    if status == 505:
        return errors.ServerError(
            f"The provider has switched this feature off for now (HTTP 505{quoted}): try again "
            "later or ask API in One support.",
            status=status,
            advice=errors.Advice.NONE,
        )
    if call.kind == "create" and status in (502, 504):
        # A gateway answered for the API: it lost the API's answer (502) or gave up waiting for
        # it (504), so the create may have been taken and charged. Never claim it was not.
        return errors.UncertainCreateError(
            f"A create was sent but its answer was lost: a gateway in front of API in One "
            f"answered it with HTTP {status}{quoted}, so the task may exist and may have been "
            "charged. It is not sent again automatically.",
            reason=f"a gateway answered HTTP {status}",
        )
    if status == 408 or status >= 500:
        after = " (nothing was created, so nothing was charged)" if call.kind == "create" else ""
        return errors.ServerError(
            f"API in One had a server error (HTTP {status}{quoted}){after}; if it persists, "
            "check the API in One status page.",
            status=status,
        )
    return errors.ServerError(
        f"API in One answered HTTP {status} unexpectedly{quoted}: check {BASE_URL_ENV} "
        f"({settings.base_url}) and try again.",
        status=status,
        advice=errors.Advice.NONE,
    )


def _not_found(call: Call, said: str) -> errors.TaskNotFoundError:
    if call.kind == "create":
        return errors.TaskNotFoundError(
            f"API in One does not know the task {call.task_id} to upscale{said}: check the id "
            "(it must be a finished text-to-image task made with this same key).",
            task_id=call.task_id,
        )
    return errors.TaskNotFoundError(
        f"API in One does not know the task {call.task_id}{said}: check the id, and that the "
        "key in use is the one that created it (tasks belong to one account).",
        task_id=call.task_id,
    )


def _rate_limited(
    retry_after: float | None, *, creating: bool, said: str = ""
) -> errors.RateLimitedError:
    when = f"retry in {math.ceil(retry_after)} s" if retry_after else "retry in a minute"
    what = "new tasks" if creating else "requests"
    note = " Nothing was created or charged." if creating else ""
    quoted = f" ({said})" if said else ""
    return errors.RateLimitedError(
        f"API in One is rate limiting {what} (HTTP 429{quoted}); {when}.{note}",
        retry_after=retry_after,
    )


def network_error(
    exc: BaseException,
    settings: Settings,
    call: Call,
    timeouts: tuple[float, float],
    *,
    body_started: bool = False,
) -> errors.NetworkError:
    """A ``requests`` exception as ``NetworkError`` / ``UncertainCreateError`` (no traceback)."""
    reason, not_sent = _describe_network_failure(exc, timeouts)
    origin = _without_query(settings.base_url)
    local = (
        "This is a local network problem (connection, DNS, firewall, proxy or TLS), not an API "
        "error"
    )
    if call.kind == "create":
        if not_sent and not body_started:
            return errors.NetworkError(
                f"Could not reach API in One at {origin} to create the task ({reason}); nothing "
                f"was sent, so nothing was charged. {local}: check it."
            )
        return errors.UncertainCreateError(
            f"A create was sent but its answer was lost ({reason}), so the task may exist and "
            "may have been charged. It is not sent again automatically.",
            reason=reason,
        )
    if reason.startswith(TIMEOUT_REASON_START):
        # It was reached: the connection was taken and the request sent. Not a local problem.
        error = errors.NetworkError(
            f"API in One at {origin} took the task status request but {reason}: it is slow or "
            "stalled right now; the task keeps running at API in One.",
            advice=errors.Advice.RESUME,
        )
        error.task_id = call.task_id
        return error
    error = errors.NetworkError(
        f"Could not reach API in One at {origin} to read the task status ({reason}). {local}: "
        "check it; the task keeps running at API in One.",
        advice=errors.Advice.RESUME,
    )
    error.task_id = call.task_id
    return error


def _describe_network_failure(
    exc: BaseException, timeouts: tuple[float, float]
) -> tuple[str, bool]:
    """(plain-words reason, True when the request provably never left this machine)."""
    chain = list(exception_chain(exc))

    def has(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(requests.exceptions.ProxyError, u3.ProxyError):
        return (
            "the HTTP(S) proxy failed or refused the connection; check HTTPS_PROXY, "
            "HTTP_PROXY and NO_PROXY"
        ), True
    if has(u3.NameResolutionError, socket.gaierror):
        return "DNS lookup failed: the API's host name could not be resolved", True
    if has(requests.exceptions.SSLError, u3.SSLError, ssl.SSLError):
        return (
            "the TLS certificate check failed; if a proxy or antivirus inspects HTTPS, "
            "point REQUESTS_CA_BUNDLE at its CA certificate"
        ), True
    if has(ConnectionRefusedError):
        return "the connection was refused", True
    if has(requests.exceptions.ConnectTimeout, u3.ConnectTimeoutError) and not has(
        requests.exceptions.ReadTimeout, u3.ReadTimeoutError
    ):
        if has(u3.NewConnectionError):
            return "the connection could not be opened", True
        return f"no connection within {timeouts[0]:g} s", True
    if has(requests.exceptions.ReadTimeout, u3.ReadTimeoutError, TimeoutError, socket.timeout):
        return f"{TIMEOUT_REASON_START} {timeouts[1]:g} s", False
    cut_off = (requests.exceptions.ChunkedEncodingError, u3.IncompleteRead, u3.ProtocolError)
    if has(*cut_off) and not has(ConnectionResetError):
        return "the connection closed before the answer was complete", False
    if has(ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return "the connection was reset", False
    if has(
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    ):
        return f"the API address is not a valid URL; check {BASE_URL_ENV}", True
    return f"network error {type(exc).__name__}", False


TIMEOUT_REASON_START = "it did not answer within"
"""How a read timeout is named: the server took the connection and never answered (never "could
not be reached", which would send the user hunting for a local network fault)."""


def exception_chain(exc: BaseException):  # type: ignore[no-untyped-def]
    """The exception, its causes/contexts, urllib3's ``reason``s and wrapped args, each once."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen or len(seen) > 32:
            continue
        seen.add(id(current))
        yield current
        for nxt in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
        stack.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, min(seconds, 24 * 3600.0))


def _retry_after_in_body(payload: Any) -> float | None:
    if isinstance(payload, dict):
        for container in (payload, payload.get("data"), payload.get("error")):
            if isinstance(container, dict):
                for key in ("retry_after", "retryAfter"):
                    value = container.get(key)
                    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                        return parse_retry_after(str(value))
    return None


def _message_from_body(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    if payload is not None:
        found = body_error(payload)
        if found is not None and found[1]:
            return found[1]
        if isinstance(payload, dict):
            for key in ("message", "msg", "detail", "error"):
                value = payload.get(key)
                if isinstance(value, str) and value.strip():
                    return value
        return ""
    if text[:1] == "<":
        match = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        return f"an HTML page: {match.group(1).strip()}" if match else "an HTML page"
    return text[:200]


def _guess_field(lowered_message: str) -> str | None:
    for field, words in _FIELD_WORDS:
        if any(word in lowered_message for word in words):
            return field
    return None


def _without_query(url: str) -> str:
    """A URL fit for a message: no credentials, query or fragment (signed URLs carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path


class _CappedRetry(Retry):
    """urllib3's ``Retry`` with ``Retry-After`` sleeps capped (long waits belong to the loop)."""

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, RETRY_AFTER_CAP_S)


def _supported(retry_class: type, **options: float) -> dict[str, float]:
    """The options this urllib3's ``Retry`` takes (1.26 lacks backoff_max / backoff_jitter)."""
    accepted = inspect.signature(retry_class.__init__).parameters
    return {name: value for name, value in options.items() if name in accepted}
