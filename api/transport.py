"""HTTP for the API calls: one ``requests`` session, timeouts, and which requests are sent again.

Never pay twice: a create is sent again only when the server provably did not take it, and each
kind of request is retried by one layer whose policy lives in ``retries`` (the session itself
retries nothing):

* **Creates** (``POST``): sent again when the connection could not be opened (refused, DNS,
  connect timeout: ``retries.CREATE``), or when the answer was HTTP 429 (rate limited: nothing
  created), honouring ``Retry-After`` for at most the caller's ``rate_limit_wait`` seconds in
  total (a task's timeout), each wait told to ``on_rate_limited`` first; after that
  ``RateLimitedError`` says how long to wait. A create whose request went out but
  whose answer did not come back (read timeout, connection reset, truncated answer) is *never*
  sent again: ``UncertainCreateError`` is raised so the journal can record it and the user can
  decide. Cancel is heard during every wait before a create is sent again.
* **Status reads** (``GET``): ``get_json`` sends once by default: inside a wait, the poll loop
  (``polling.wait_for_task``) is the one layer that retries. A lone read (``GrokClient.get_task``)
  passes ``retries.STATUS_READ``.
* Redirects are not followed for API calls (a POST would turn into a GET); a 3xx says which
  address to configure instead.

Errors: ``http_errors`` turns an HTTP status, an error ``code`` in a 200 body, or a ``requests``
exception into one of ``errors``' classes. The Authorization header is set per request (never on
the session, so no other host can receive it) and nothing logs headers. DEBUG log lines (logger
``grok_imagine.api``) carry method, path, status and elapsed time only.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import errors, redaction
from .config import Settings
from .http_errors import (
    Call,
    classify,
    map_api_error,
    message_from_body,
    network_error,
    rate_limited,
    without_query,
)
from .messages import Fact, said
from .retries import CREATE, ONE_TRY, RATE_LIMITED_CREATE, RetryPolicy
from .task import DEFAULT_TASK_TIMEOUT_S
from .task_reader import body_error
from .what import What

__all__ = [
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
CANCEL_SLICE_S = 0.1
"""Longest sleep between Cancel checks while a create waits to be sent again."""
MAX_ERROR_BODY_BYTES = 64 * 1024

Pause = Callable[[float], None]


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


def make_session() -> requests.Session:
    """A ``requests.Session`` that retries nothing: every retry is the caller's (``retries``).

    ``trust_env`` stays on: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` and
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` apply as for any ``requests`` user.
    """
    redaction.install()  # before the first request line is logged
    session = requests.Session()
    session.trust_env = True
    adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=16)
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

    def get_json(self, path: str, call: Call, policy: RetryPolicy = ONE_TRY) -> Any:
        """GET an API path and return its JSON; tried as ``policy`` allows (once by default: a
        wait's poll loop does its own retrying). HTTP errors raised as typed errors."""
        response = self._send("GET", path, call, policy, self._sleep)
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
        *,
        rate_limit_wait: float = DEFAULT_TASK_TIMEOUT_S,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> Any:
        """POST a create; sent again only when nothing was sent or nothing was created (see the
        module's docstring). HTTP 429 is waited out for at most ``rate_limit_wait`` seconds in
        all, ``on_rate_limited(seconds)`` told before each wait. Cancel (``should_cancel``) or
        Ctrl-C during a wait before sending it again ends it with ``CancelledError``: nothing
        was created."""
        give_up_at = time.monotonic() + max(0.0, rate_limit_wait)
        pause = functools.partial(self._wait_before_resend, should_cancel=should_cancel)
        refused = 0
        while True:
            response = self._send(
                "POST", path, call, CREATE, pause, json_body=body, passthrough=(429,)
            )
            limited, payload, retry_after = self._create_answer(response, call)
            if not limited:
                return payload
            refused += 1
            # Retry-After is a floor, not a licence: "0" (or a date already past) must not turn
            # a 429 storm into a tight loop of creates.
            wait = RATE_LIMITED_CREATE.wait(refused, retry_after)
            if time.monotonic() + wait > give_up_at:
                raise rate_limited(retry_after, creating=True)
            logger.info("create rate limited (HTTP 429); sending it again in %.1f s", wait)
            if on_rate_limited is not None:
                on_rate_limited(wait)
            pause(wait)

    def _create_answer(
        self, response: requests.Response, call: Call
    ) -> tuple[bool, Any, float | None]:
        """(rate limited, the JSON answer, Retry-After): HTTP 429, or 429 as the body's code."""
        try:
            if response.status_code == 429:
                return True, None, parse_retry_after(response.headers.get("Retry-After"))
            payload = self._json_of(response, call)
        finally:
            response.close()
        found = body_error(payload)
        if found is not None and found[0] == 429:
            return True, payload, _retry_after_in_body(payload)
        return False, payload, None

    def _wait_before_resend(
        self, seconds: float, should_cancel: Callable[[], bool] | None = None
    ) -> None:
        """Sleep in short slices: a Cancel here must not send a paid create later."""
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
        policy: RetryPolicy,
        pause: Pause,
        *,
        json_body: dict[str, Any] | None = None,
        passthrough: tuple[int, ...] = (),
    ) -> requests.Response:
        """The request, sent again as ``policy`` allows; an HTTP error status (other than
        ``passthrough``) or a lost answer raised as a typed error."""
        failures = 0
        while True:
            try:
                response = self._request(method, path, json_body)
            except requests.RequestException as exc:
                failures += 1
                failure = classify(exc, self.timeouts)
                if failure.cause not in policy.causes or not policy.allows(failures):
                    raise network_error(exc, self.settings, call, self.timeouts) from None
                wait = policy.wait(failures)
                logger.info("%s %s: %s; trying again in %.1f s", method, path, failure.reason, wait)
                pause(wait)
                continue
            status = response.status_code
            if status in policy.statuses and policy.allows(failures + 1):
                failures += 1
                wait = policy.wait(failures, parse_retry_after(response.headers.get("Retry-After")))
                response.close()
                logger.info("%s %s -> %d; trying again in %.1f s", method, path, status, wait)
                pause(wait)
                continue
            if status >= 300 and status not in passthrough:
                try:
                    raise self._http_error(response, call)
                finally:
                    response.close()
            return response

    def _request(
        self, method: str, path: str, json_body: dict[str, Any] | None
    ) -> requests.Response:
        """One HTTP exchange, logged at DEBUG without headers."""
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
            elapsed = time.perf_counter() - started
            logger.debug("%s %s failed after %.3f s: %s", method, path, elapsed, type(exc).__name__)
            raise
        elapsed = time.perf_counter() - started
        logger.debug("%s %s -> %d in %.3f s", method, path, response.status_code, elapsed)
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
        answer = said(
            What.AN_HTML_PAGE
            if body.lstrip()[:1] == b"<"
            else (What.AN_EMPTY_ANSWER if not body.strip() else What.NOT_JSON)
        )
        kind = (
            What.CREATE_ANSWER_UNREADABLE
            if call.kind == "create"
            else What.STATUS_ANSWER_UNREADABLE
        )
        raise errors.BadResponseError(said(kind, answer=answer, status=response.status_code))

    def _http_error(self, response: requests.Response, call: Call) -> errors.GrokError:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            target: Fact = without_query(location) if location else said(What.ANOTHER_ADDRESS)
            return errors.ServerError(
                said(What.REDIRECTED, status=status, target=target), status=status
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
