"""What went wrong on the way to the API, as one of ``errors``' classes: two tables.

* ``map_api_error``: an API refusal (an HTTP status, or an error ``code`` in a 200 body such as
  ``{"code": 401, ...}``) becomes a typed error saying what to do. Exact statuses are looked up in
  ``_BY_STATUS``; the rest go down ``_BY_RULE`` (not found, client error, a gateway's answer to a
  create, server error) in order.
* ``network_error``: a ``requests``/urllib3 exception becomes ``NetworkError`` naming the local
  cause (``_CAUSES``: proxy, DNS, TLS, refused, timeouts, reset ...) and whether the request
  provably never left this machine; a create that may have been sent is ``UncertainCreateError``.

Messages never hold the key (every one goes through ``errors.redact``) and chain no traceback.
"""

from __future__ import annotations

import enum
import json
import math
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from urllib3 import exceptions as u3

from . import errors
from .config import Settings
from .env import BASE_URL_ENV
from .task_reader import body_error

__all__ = [
    "TIMEOUT_REASON_START",
    "Call",
    "Cause",
    "Failure",
    "classify",
    "exception_chain",
    "map_api_error",
    "message_from_body",
    "network_error",
    "rate_limited",
    "without_query",
]


@dataclass(frozen=True)
class Call:
    """What an API call is for, so an error can say something specific."""

    kind: str  # "create" or "status"
    task_id: str | None = None
    """For a status read: the task read. For an upscale create: the source task."""
    model: str | None = None


# -- an API refusal --------------------------------------------------------------------------------

_NOT_FOUND_WORDS = ("recordinfo is null", "not found", "not exist", "no such task", "unknown task")
_FIELD_WORDS = (
    ("aspect_ratio", ("aspect_ratio", "aspect ratio", "aspectratio")),
    ("task_id", ("task_id", "task id", "taskid")),
    ("prompt", ("prompt",)),
    ("model", ("model",)),
)


@dataclass(frozen=True)
class _Refusal:
    """One refusal, with what every message may quote."""

    status: int
    said: str
    """The server's own words: redacted, one line, at most 300 characters ("" for none)."""
    call: Call
    settings: Settings
    retry_after: float | None

    @property
    def quoted(self) -> str:
        return f": {self.said}" if self.said else ""

    @property
    def creating(self) -> bool:
        return self.call.kind == "create"


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
    refusal = _Refusal(status, said, call, settings, retry_after)
    build = _BY_STATUS.get(status)
    if build is None:
        build = next((make for test, make in _BY_RULE if test(refusal)), _unexpected)
    return build(refusal)


def _bad_key(r: _Refusal) -> errors.GrokError:
    return errors.AuthError(
        f"API in One did not accept the API key (HTTP 401{r.quoted}). The key in use comes "
        f"from {r.settings.key_source}."
    )


def _forbidden(r: _Refusal) -> errors.GrokError:
    return errors.AuthError(
        f"API in One refused this key access (HTTP 403{r.quoted}): check the key's permissions "
        "in your API in One dashboard, or use another key."
    )


def _no_credits(r: _Refusal) -> errors.GrokError:
    return errors.InsufficientCreditsError(
        f"Not enough API in One credits for this request (HTTP 402{r.quoted}); text-to-image "
        "costs 5 credits, upscale 12."
    )


def _key_limit(r: _Refusal) -> errors.GrokError:
    return errors.InsufficientCreditsError(
        f"This API key has reached its usage limit (HTTP 433, sub-key limit{r.quoted}): raise "
        "the key's limit in your API in One dashboard or use another key.",
        advice=errors.Advice.NONE,
    )


def _too_many(r: _Refusal) -> errors.GrokError:
    return rate_limited(r.retry_after, creating=r.creating, said=r.said)


def _maintenance(r: _Refusal) -> errors.GrokError:
    return errors.ServerError(
        f"API in One is under maintenance (HTTP 455{r.quoted}).",
        status=r.status,
    )


def _generation_failed(r: _Refusal) -> errors.GrokError:
    return errors.TaskFailedError(
        r.call.task_id if r.call.kind == "status" else None, r.said or None
    )


def _switched_off(r: _Refusal) -> errors.GrokError:
    return errors.ServerError(
        f"The provider has switched this feature off for now (HTTP 505{r.quoted}): try again "
        "later or ask API in One support.",
        status=r.status,
        advice=errors.Advice.NONE,
    )


def _is_not_found(r: _Refusal) -> bool:
    lowered = r.said.lower()
    return r.status == 404 or (
        r.status in (400, 422) and any(w in lowered for w in _NOT_FOUND_WORDS)
    )


def _not_found(r: _Refusal) -> errors.GrokError:
    lowered = r.said.lower()
    wrong_address = r.status == 404 and ("endpoint" in lowered or "route" in lowered)
    if not wrong_address and (r.call.kind == "status" or (r.creating and r.call.task_id)):
        return _unknown_task(r.call, f" (HTTP {r.status}{r.quoted})")
    return errors.ServerError(
        f"API in One answered {r.status} Not Found for the {r.call.kind} request{r.quoted}: check "
        f"that {BASE_URL_ENV} ({r.settings.base_url}) is the API's address.",
        status=r.status,
        advice=errors.Advice.NONE,
    )


def _unknown_task(call: Call, said: str) -> errors.TaskNotFoundError:
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


def _is_client_error(r: _Refusal) -> bool:
    return 400 <= r.status < 500 and r.status not in (405, 408)


def _rejected(r: _Refusal) -> errors.GrokError:
    field = _guess_field(r.said.lower()) or ("task_id" if r.call.kind == "status" else None)
    return errors.InvalidRequestError(
        f"API in One rejected the request (HTTP {r.status}{r.quoted}).",
        field=field,
        from_server=True,
    )


def _is_lost_create(r: _Refusal) -> bool:
    return r.creating and r.status in (502, 504)


def _lost_create(r: _Refusal) -> errors.GrokError:
    # A gateway answered for the API: it lost the API's answer (502) or gave up waiting for
    # it (504), so the create may have been taken and charged. Never claim it was not.
    return errors.UncertainCreateError(
        f"A create was sent but its answer was lost: a gateway in front of API in One "
        f"answered it with HTTP {r.status}{r.quoted}, so the task may exist and may have been "
        "charged. It is not sent again automatically.",
        reason=f"a gateway answered HTTP {r.status}",
    )


def _is_server_error(r: _Refusal) -> bool:
    return r.status == 408 or r.status >= 500


def _server_error(r: _Refusal) -> errors.GrokError:
    after = " (nothing was created, so nothing was charged)" if r.creating else ""
    return errors.ServerError(
        f"API in One had a server error (HTTP {r.status}{r.quoted}){after}; if it persists, "
        "check the API in One status page.",
        status=r.status,
    )


def _unexpected(r: _Refusal) -> errors.GrokError:
    return errors.ServerError(
        f"API in One answered HTTP {r.status} unexpectedly{r.quoted}: check {BASE_URL_ENV} "
        f"({r.settings.base_url}) and try again.",
        status=r.status,
        advice=errors.Advice.NONE,
    )


_BY_STATUS: dict[int, Callable[[_Refusal], errors.GrokError]] = {
    401: _bad_key,
    402: _no_credits,
    403: _forbidden,
    429: _too_many,
    433: _key_limit,
    455: _maintenance,
    501: _generation_failed,
    505: _switched_off,
}
"""The statuses that mean one thing whatever the call."""
_BY_RULE: tuple[tuple[Callable[[_Refusal], bool], Callable[[_Refusal], errors.GrokError]], ...] = (
    (_is_not_found, _not_found),
    (_is_client_error, _rejected),
    (_is_lost_create, _lost_create),
    (_is_server_error, _server_error),
)
"""The rest, first match wins; none matching is ``_unexpected``."""


def rate_limited(
    retry_after: float | None, *, creating: bool, said: str = ""
) -> errors.RateLimitedError:
    """HTTP 429, with when to try again (``retry_after`` seconds, else a minute)."""
    when = f"retry in {math.ceil(retry_after)} s" if retry_after else "retry in a minute"
    what = "new tasks" if creating else "requests"
    note = " Nothing was created or charged." if creating else ""
    quoted = f" ({said})" if said else ""
    return errors.RateLimitedError(
        f"API in One is rate limiting {what} (HTTP 429{quoted}); {when}.{note}",
        retry_after=retry_after,
    )


def message_from_body(body: bytes) -> str:
    """The server's own words in an error answer: a JSON message, an HTML title, or the text."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    if payload is not None:
        return _json_message(payload)
    if text[:1] == "<":
        match = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        return f"an HTML page: {match.group(1).strip()}" if match else "an HTML page"
    return text[:200]


def _json_message(payload: object) -> str:
    found = body_error(payload)
    if found is not None and found[1]:
        return found[1]
    if isinstance(payload, dict):
        for key in ("message", "msg", "detail", "error"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return ""


def _guess_field(lowered_message: str) -> str | None:
    for field, words in _FIELD_WORDS:
        if any(word in lowered_message for word in words):
            return field
    return None


def without_query(url: str) -> str:
    """A URL fit for a message: no credentials, query or fragment (signed URLs carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path


# -- a lost answer ---------------------------------------------------------------------------------

TIMEOUT_REASON_START = "it did not answer within"
"""How a read timeout is named: the server took the connection and never answered (never "could
not be reached", which would send the user hunting for a local network fault)."""


class Cause(enum.Enum):
    """Why a request got no answer, as far as this machine can tell."""

    PROXY = "proxy"
    DNS = "dns"
    NOT_HTTPS = "not_https"
    """An https:// address whose server answered the TLS handshake in plain HTTP."""
    TLS = "tls"
    REFUSED = "refused"
    NOT_OPENED = "not_opened"
    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"
    CUT_OFF = "cut_off"
    RESET = "reset"
    BAD_URL = "bad_url"
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    """A classified network failure: its cause, its plain-words reason, and whether the request
    provably never left this machine (so a create can be sent again without paying twice)."""

    cause: Cause
    reason: str
    not_sent: bool


@dataclass(frozen=True)
class _Rule:
    cause: Cause
    any_of: tuple[type[BaseException], ...]
    """The failure is this cause when one of these is anywhere in the exception's chain..."""
    unless: tuple[type[BaseException], ...]
    """...and none of these is."""
    reason: str
    """Plain words; ``{connect}`` / ``{read}`` are the timeouts in seconds."""
    not_sent: bool


_READ_TIMEOUTS = (requests.exceptions.ReadTimeout, u3.ReadTimeoutError)
_CAUSES = (
    _Rule(
        Cause.PROXY,
        (requests.exceptions.ProxyError, u3.ProxyError),
        (),
        "the HTTP(S) proxy failed or refused the connection; check HTTPS_PROXY, HTTP_PROXY and "
        "NO_PROXY",
        True,
    ),
    _Rule(
        Cause.DNS,
        (u3.NameResolutionError, socket.gaierror),
        (),
        "DNS lookup failed: the API's host name could not be resolved",
        True,
    ),
    _Rule(
        Cause.TLS,
        (requests.exceptions.SSLError, u3.SSLError, ssl.SSLError),
        (),
        "the TLS certificate check failed; if a proxy or antivirus inspects HTTPS, point "
        "REQUESTS_CA_BUNDLE at its CA certificate",
        True,
    ),
    _Rule(Cause.REFUSED, (ConnectionRefusedError,), (), "the connection was refused", True),
    _Rule(
        Cause.NOT_OPENED,
        (u3.NewConnectionError,),
        _READ_TIMEOUTS,
        "the connection could not be opened",
        True,
    ),
    _Rule(
        Cause.CONNECT_TIMEOUT,
        (requests.exceptions.ConnectTimeout, u3.ConnectTimeoutError),
        _READ_TIMEOUTS,
        "no connection within {connect:g} s",
        True,
    ),
    _Rule(
        Cause.READ_TIMEOUT,
        (*_READ_TIMEOUTS, TimeoutError, socket.timeout),
        (),
        TIMEOUT_REASON_START + " {read:g} s",
        False,
    ),
    _Rule(
        Cause.CUT_OFF,
        (requests.exceptions.ChunkedEncodingError, u3.IncompleteRead, u3.ProtocolError),
        (ConnectionResetError,),
        "the connection closed before the answer was complete",
        False,
    ),
    _Rule(
        Cause.RESET,
        (ConnectionResetError, ConnectionAbortedError, BrokenPipeError),
        (),
        "the connection was reset",
        False,
    ),
    _Rule(
        Cause.BAD_URL,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ),
        (),
        f"the API address is not a valid URL; check {BASE_URL_ENV}",
        True,
    ),
)
"""The first rule that matches names the failure; none matching is ``Cause.OTHER``."""


_PLAIN_HTTP_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"})
"""OpenSSL's reason codes for a TLS handshake answered by something that is not TLS: an https://
address whose server speaks plain HTTP (OpenSSL 3.2 and newer name it a record layer failure)."""


def classify(exc: BaseException, timeouts: tuple[float, float]) -> Failure:
    """The cause of a ``requests``/urllib3 exception, from everything chained to it."""
    chain = list(exception_chain(exc))

    def has(types: tuple[type[BaseException], ...]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if any(
        isinstance(e, ssl.SSLError) and getattr(e, "reason", None) in _PLAIN_HTTP_REASONS
        for e in chain
    ):
        return Failure(Cause.NOT_HTTPS, "the server does not speak HTTPS", True)
    for rule in _CAUSES:
        if has(rule.any_of) and not has(rule.unless):
            reason = rule.reason.format(connect=timeouts[0], read=timeouts[1])
            return Failure(rule.cause, reason, rule.not_sent)
    return Failure(Cause.OTHER, f"network error {type(exc).__name__}", False)


def network_error(
    exc: BaseException,
    settings: Settings,
    call: Call,
    timeouts: tuple[float, float],
    *,
    body_started: bool = False,
) -> errors.NetworkError:
    """A ``requests`` exception as ``NetworkError`` / ``UncertainCreateError`` (no traceback)."""
    failure = classify(exc, timeouts)
    reason = failure.reason
    origin = without_query(settings.base_url)
    if failure.cause is Cause.NOT_HTTPS:
        return _not_https(origin, call)
    local = (
        "This is a local network problem (connection, DNS, firewall, proxy or TLS), not an API "
        "error"
    )
    if call.kind == "create":
        if failure.not_sent and not body_started:
            return errors.NetworkError(
                f"Could not reach API in One at {origin} to create the task ({reason}); nothing "
                f"was sent, so nothing was charged. {local}: check it."
            )
        return errors.UncertainCreateError(
            f"A create was sent but its answer was lost ({reason}), so the task may exist and "
            "may have been charged. It is not sent again automatically.",
            reason=reason,
        )
    if failure.cause is Cause.READ_TIMEOUT:
        # It was reached: the connection was taken and the request sent. Not a local problem.
        error = errors.NetworkError(
            f"API in One at {origin} took the task status request but {reason}: it is slow or "
            "stalled right now; the task keeps running at API in One.",
            advice=errors.Advice.RESUME,
        )
    else:
        error = errors.NetworkError(
            f"Could not reach API in One at {origin} to read the task status ({reason}). "
            f"{local}: check it; the task keeps running at API in One.",
            advice=errors.Advice.RESUME,
        )
    error.task_id = call.task_id
    return error


def _not_https(origin: str, call: Call) -> errors.NetworkError:
    """An https:// base URL whose server answers in plain HTTP: a mistake in the address, not a
    certificate or network problem, so the fix is to name the address right."""
    plain = "http://" + origin.split("://", 1)[-1]
    sent = " Nothing was sent, so nothing was charged." if call.kind == "create" else ""
    return errors.NetworkError(
        f"The server at {origin} does not speak HTTPS (it answered in plain HTTP): did you mean "
        f"{plain}? Set {BASE_URL_ENV} to the address the API really has.{sent}",
        advice=errors.Advice.NONE,
    )


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
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
