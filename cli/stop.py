"""Ctrl-C, SIGTERM and SIGHUP as a flag the work polls, and leaving at once when it must."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

from .exit_codes import EXIT_INTERRUPTED


class Interrupted(Exception):
    """The user asked the run to stop (Ctrl-C, SIGTERM, SIGHUP)."""


class StopSignal:
    """Turns SIGINT / SIGTERM / SIGHUP into a flag the runner's waits poll (``should_cancel``).

    A second signal leaves at once. Installed only around commands that run tasks, so prompts
    (``key set``) keep Python's ordinary Ctrl-C.
    """

    SIGNALS = tuple(
        getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
    )

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def is_set(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            hard_exit(EXIT_INTERRUPTED)
        self.event.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignal]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # in-process callers on other threads: only the flag
            return
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)  # type: ignore[arg-type]


def hard_exit(code: int) -> NoReturn:
    """Leave now: worker threads still blocked on the network must not hold the exit."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
