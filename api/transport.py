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

Errors: ``http_errors`` turns an HTTP status, an error ``code`` in a 200 body, or a ``requests``
exception into one of ``errors``' classes. The Authorization header is set per request (never on
the session, so no other host can receive it) and nothing logs headers. DEBUG log lines (logger
``grok_imagine.api``) carry method, path, status and elapsed time only.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import errors, redaction
from .config import Settings
from .env import BASE_URL_ENV
from .http_errors import (
    Call,
    map_api_error,
    message_from_body,
    network_error,
    rate_limited,
    without_query,
)
from .task_reader import body_error

__all__ = [
    "API_RETRY_STATUSES",
    "Call",
    "Transport",
    "make_session",
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
                raise rate_limited(retry_after, creating=True)
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
            target = without_query(location) if location else "another address"
            return errors.ServerError(
                f"API in One answered with a redirect (HTTP {status}) to {target}: set "
                f"{BASE_URL_ENV} to the address the API really lives at.",
                status=status,
            )
        try:
            body = self._read_body(response, call, MAX_ERROR_BODY_BYTES)
        except errors.NetworkError:
            body = b""
        message = message_from_body(body)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return map_api_error(status, message, call, self.settings, retry_after=retry_after)


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


class _CappedRetry(Retry):
    """urllib3's ``Retry`` with ``Retry-After`` sleeps capped (long waits belong to the loop)."""

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, RETRY_AFTER_CAP_S)


def _supported(retry_class: type, **options: float) -> dict[str, float]:
    """The options this urllib3's ``Retry`` takes (1.26 lacks backoff_max / backoff_jitter)."""
    accepted = inspect.signature(retry_class.__init__).parameters
    return {name: value for name, value in options.items() if name in accepted}
