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

from . import errors, messages
from .config import Settings
from .messages import Fact, Message, english, said
from .task_reader import body_error
from .what import What

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
    def quoted(self) -> Fact:
        return said(What.SAID, said=self.said) if self.said else ""

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
    return errors.AuthError(said(What.KEY_REFUSED, said=r.quoted, key_source=r.settings.key_origin))


def _forbidden(r: _Refusal) -> errors.GrokError:
    return errors.AuthError(said(What.KEY_FORBIDDEN, said=r.quoted))


def _no_credits(r: _Refusal) -> errors.GrokError:
    return errors.InsufficientCreditsError(said(What.NO_CREDITS, said=r.quoted))


def _key_limit(r: _Refusal) -> errors.GrokError:
    return errors.InsufficientCreditsError(
        said(What.KEY_LIMIT, said=r.quoted), advice=errors.Advice.NONE
    )


def _too_many(r: _Refusal) -> errors.GrokError:
    return rate_limited(r.retry_after, creating=r.creating, said=r.said)


def _maintenance(r: _Refusal) -> errors.GrokError:
    return errors.ServerError(said(What.MAINTENANCE, said=r.quoted), status=r.status)


def _generation_failed(r: _Refusal) -> errors.GrokError:
    return errors.TaskFailedError(
        r.call.task_id if r.call.kind == "status" else None, r.said or None
    )


def _switched_off(r: _Refusal) -> errors.GrokError:
    return errors.ServerError(
        said(What.SWITCHED_OFF, said=r.quoted),
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
        return _unknown_task(r.call, said(What.HTTP_STATUS, status=r.status, said=r.quoted))
    kind = What.NOT_FOUND_CREATE if r.creating else What.NOT_FOUND_STATUS
    return errors.ServerError(
        said(kind, status=r.status, said=r.quoted, base_url=r.settings.base_url),
        status=r.status,
        advice=errors.Advice.NONE,
    )


def _unknown_task(call: Call, status: Message) -> errors.TaskNotFoundError:
    kind = What.UNKNOWN_SOURCE_TASK if call.kind == "create" else What.UNKNOWN_TASK
    return errors.TaskNotFoundError(
        said(kind, task_id=call.task_id or "None", said=status), task_id=call.task_id
    )


def _is_client_error(r: _Refusal) -> bool:
    return 400 <= r.status < 500 and r.status not in (405, 408)


def _rejected(r: _Refusal) -> errors.GrokError:
    field = _guess_field(r.said.lower()) or ("task_id" if r.call.kind == "status" else None)
    return errors.InvalidRequestError(
        said(What.REJECTED, status=r.status, said=r.quoted),
        field=field,
        from_server=True,
    )


def _is_lost_create(r: _Refusal) -> bool:
    return r.creating and r.status in (502, 504)


def _lost_create(r: _Refusal) -> errors.GrokError:
    # A gateway answered for the API: it lost the API's answer (502) or gave up waiting for
    # it (504), so the create may have been taken and charged. Never claim it was not.
    return errors.UncertainCreateError(
        said(What.LOST_AT_GATEWAY, status=r.status, said=r.quoted),
        reason=f"a gateway answered HTTP {r.status}",
    )


def _is_server_error(r: _Refusal) -> bool:
    return r.status == 408 or r.status >= 500


def _server_error(r: _Refusal) -> errors.GrokError:
    kind = What.SERVER_ERROR_CREATE if r.creating else What.SERVER_ERROR_READ
    return errors.ServerError(
        said(kind, status=r.status, said=r.quoted),
        status=r.status,
    )


def _unexpected(r: _Refusal) -> errors.GrokError:
    return errors.ServerError(
        said(What.UNEXPECTED_STATUS, status=r.status, said=r.quoted, base_url=r.settings.base_url),
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
    when = (
        messages.said(What.RETRY_IN, seconds=math.ceil(retry_after))
        if retry_after
        else messages.said(What.RETRY_IN_A_MINUTE)
    )
    kind = What.RATE_LIMITED_CREATE if creating else What.RATE_LIMITED_READ
    quoted: Fact = messages.said(What.SAID_IN_BRACKETS, said=said) if said else ""
    return errors.RateLimitedError(
        messages.said(kind, said=quoted, when=when), retry_after=retry_after
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

TIMEOUT_REASON_START = What.CAUSE_READ_TIMEOUT.value.split(" {", 1)[0]
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
    """A classified network failure: its cause, its reason in words (``said``), and whether the
    request provably never left this machine (so a create can be sent again without paying
    twice)."""

    cause: Cause
    said: Message
    not_sent: bool

    @property
    def reason(self) -> str:
        return english(self.said)


@dataclass(frozen=True)
class _Rule:
    cause: Cause
    any_of: tuple[type[BaseException], ...]
    """The failure is this cause when one of these is anywhere in the exception's chain..."""
    unless: tuple[type[BaseException], ...]
    """...and none of these is."""
    reason: What
    """Its words; ``{seconds}`` is the timeout that ran out (connect, else read)."""
    not_sent: bool


_READ_TIMEOUTS = (requests.exceptions.ReadTimeout, u3.ReadTimeoutError)
_CAUSES = (
    _Rule(
        Cause.PROXY,
        (requests.exceptions.ProxyError, u3.ProxyError),
        (),
        What.CAUSE_PROXY,
        True,
    ),
    _Rule(
        Cause.DNS,
        (u3.NameResolutionError, socket.gaierror),
        (),
        What.CAUSE_DNS,
        True,
    ),
    _Rule(
        Cause.TLS,
        (requests.exceptions.SSLError, u3.SSLError, ssl.SSLError),
        (),
        What.CAUSE_TLS,
        True,
    ),
    _Rule(Cause.REFUSED, (ConnectionRefusedError,), (), What.CAUSE_REFUSED, True),
    _Rule(
        Cause.NOT_OPENED,
        (u3.NewConnectionError,),
        _READ_TIMEOUTS,
        What.CAUSE_NOT_OPENED,
        True,
    ),
    _Rule(
        Cause.CONNECT_TIMEOUT,
        (requests.exceptions.ConnectTimeout, u3.ConnectTimeoutError),
        _READ_TIMEOUTS,
        What.CAUSE_CONNECT_TIMEOUT,
        True,
    ),
    _Rule(
        Cause.READ_TIMEOUT,
        (*_READ_TIMEOUTS, TimeoutError, socket.timeout),
        (),
        What.CAUSE_READ_TIMEOUT,
        False,
    ),
    _Rule(
        Cause.CUT_OFF,
        (requests.exceptions.ChunkedEncodingError, u3.IncompleteRead, u3.ProtocolError),
        (ConnectionResetError,),
        What.CAUSE_CUT_OFF,
        False,
    ),
    _Rule(
        Cause.RESET,
        (ConnectionResetError, ConnectionAbortedError, BrokenPipeError),
        (),
        What.CAUSE_RESET,
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
        What.CAUSE_BAD_URL,
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
        return Failure(Cause.NOT_HTTPS, said(What.CAUSE_NOT_HTTPS), True)
    for rule in _CAUSES:
        if has(rule.any_of) and not has(rule.unless):
            seconds = timeouts[0] if rule.cause is Cause.CONNECT_TIMEOUT else timeouts[1]
            return Failure(rule.cause, said(rule.reason, seconds=f"{seconds:g}"), rule.not_sent)
    return Failure(Cause.OTHER, said(What.CAUSE_OTHER, name=type(exc).__name__), False)


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
    reason = failure.said
    origin = without_query(settings.base_url)
    if failure.cause is Cause.NOT_HTTPS:
        return _not_https(origin, call)
    if call.kind == "create":
        if failure.not_sent and not body_started:
            return errors.NetworkError(said(What.UNREACHABLE_CREATE, origin=origin, reason=reason))
        return errors.UncertainCreateError(
            said(What.LOST_CREATE, reason=reason), reason=failure.reason
        )
    # A read timeout: it was reached, the connection taken and the request sent; not local.
    stalled = failure.cause is Cause.READ_TIMEOUT
    kind = What.STATUS_READ_STALLED if stalled else What.UNREACHABLE_STATUS
    error = errors.NetworkError(
        said(kind, origin=origin, reason=reason), advice=errors.Advice.RESUME
    )
    error.task_id = call.task_id
    return error


def _not_https(origin: str, call: Call) -> errors.NetworkError:
    """An https:// base URL whose server answers in plain HTTP: a mistake in the address, not a
    certificate or network problem, so the fix is to name the address right."""
    plain = "http://" + origin.split("://", 1)[-1]
    kind = What.NOT_HTTPS_CREATE if call.kind == "create" else What.NOT_HTTPS_READ
    return errors.NetworkError(said(kind, origin=origin, plain=plain), advice=errors.Advice.NONE)


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
