"""How often each kind of request is tried, and how long apart: one retry layer per kind.

The HTTP sessions retry nothing themselves (urllib3's ``Retry`` is off), so no request is
repeated by a layer that the caller, and the message the user reads, does not know about:

==================  ==========================================  ===================================
request             tried again when                            how often, how far apart
==================  ==========================================  ===================================
create              the connection could not be opened          ``CREATE``: 3 tries
                    (refused, DNS, connect timeout): nothing
                    was sent
create              HTTP 429: nothing was created               ``RATE_LIMITED_CREATE`` backoff,
                                                                ``Retry-After`` a floor, for at
                                                                most the caller's
                                                                ``rate_limit_wait`` (the task's
                                                                timeout), each wait shown
status read, in a   any passing failure (``polling.            ``PollSchedule.backoff``, until the
wait                is_transient``)                             wait's timeout (Cancel heard)
status read, alone  a connection failure, a timeout, HTTP       ``STATUS_READ``: 3 tries
(``get_task``)      408/429/455/5xx
result file         a connection failure, a timeout, a cut-off  ``RESULT_FILE``: 3 tries within the
                    body, HTTP 408/425/429/5xx                  download deadline
==================  ==========================================  ===================================

A create whose request may have reached the server (a read timeout, a reset, a cut-off answer, a
gateway's 502/504) is never sent again: ``errors.UncertainCreateError`` lets the user decide.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ServerError
from .http_errors import Cause

__all__ = [
    "API_RETRY_STATUSES",
    "CREATE",
    "ONE_TRY",
    "RATE_LIMITED_CREATE",
    "RESULT_FILE",
    "STATUS_READ",
    "RetryPolicy",
]

API_RETRY_STATUSES = ServerError.RETRYABLE_STATUSES
"""The API's answers that a moment later may be different: 408, 429, 455 maintenance, 5xx."""
_NOT_CONNECTED = frozenset({Cause.DNS, Cause.REFUSED, Cause.NOT_OPENED, Cause.CONNECT_TIMEOUT})
"""The connection could not be opened: the request provably never left this machine."""
_NO_ANSWER = _NOT_CONNECTED | {Cause.READ_TIMEOUT, Cause.CUT_OFF, Cause.RESET}


@dataclass(frozen=True)
class RetryPolicy:
    """How one kind of request is tried again. Waits double from ``first_wait`` up to
    ``max_wait``, times a jitter draw; a server's ``Retry-After`` is a floor (up to
    ``max_retry_after``) that the jitter never shortens."""

    attempts: int
    """Tries in all, the first included; 0: no count (a time budget ends the tries)."""
    first_wait: float
    max_wait: float
    jitter: tuple[float, float] = (1.0, 1.1)
    """Each wait is multiplied by a draw from this range, so many clients do not resynchronise."""
    max_retry_after: float = math.inf
    statuses: frozenset[int] = frozenset()
    """HTTP answers tried again."""
    causes: frozenset[Cause] = frozenset()
    """Network failures tried again (for API calls, see ``http_errors.classify``)."""

    def allows(self, failures: int) -> bool:
        """May a request that failed ``failures`` times in a row be tried once more?"""
        return self.attempts == 0 or failures < self.attempts

    def wait(
        self,
        failures: int,
        retry_after: float | None = None,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1, 2, ...)."""
        backoff = min(self.max_wait, self.first_wait * 2.0 ** max(0, min(failures - 1, 30)))
        factor = draw(*self.jitter)
        if retry_after is None:
            return backoff * factor
        return max(backoff * factor, min(retry_after, self.max_retry_after) * max(1.0, factor))


ONE_TRY = RetryPolicy(attempts=1, first_wait=0.0, max_wait=0.0)
"""Sent once: a status read inside a wait, whose loop is the retry layer."""
CREATE = RetryPolicy(attempts=3, first_wait=0.1, max_wait=1.0, causes=_NOT_CONNECTED)
RATE_LIMITED_CREATE = RetryPolicy(
    attempts=0, first_wait=0.5, max_wait=8.0, statuses=frozenset({429})
)
STATUS_READ = RetryPolicy(
    attempts=3,
    first_wait=0.1,
    max_wait=1.0,
    max_retry_after=1.0,  # a longer wait belongs to a wait loop, where Cancel is heard
    statuses=API_RETRY_STATUSES,
    causes=_NO_ANSWER,
)
RESULT_FILE = RetryPolicy(
    attempts=3,
    first_wait=0.5,
    max_wait=4.0,
    jitter=(0.8, 1.2),
    max_retry_after=4.0,
    statuses=frozenset({408, 425, 429, 500, 502, 503, 504}),
)
