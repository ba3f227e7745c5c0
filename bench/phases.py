"""Where a node run's time goes: thin timing wrappers around the pack's phase functions.

The wrappers only read the clock before and after the original call (a microsecond or two per
call, on calls that take milliseconds), and are removed when the block ends.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import stats
from pack import submodule

PHASES = (
    ("api.client", "GrokClient", "create_text_to_image", "create"),
    ("api.client", "GrokClient", "wait", "wait"),
    ("journal.result_files", "ResultFiles", "fetch", "download"),
    ("journal.files", "FileStore", "save", "keep"),
    ("journal.sqlite", "Journal", "record_file", "record"),
    ("nodes.execution", None, "collect", "to_tensor"),
    ("nodes.image_tensors", None, "_fill", "decode"),
)
"""(module, class or None, function, phase name): the node's steps in order."""


@dataclass
class PhaseLog:
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    """(phase, start, end) in ``time.monotonic()`` seconds."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.spans.clear()

    def last_end(self, phase: str) -> float:
        return max((end for name, _, end in self.spans if name == phase), default=float("nan"))

    def first_start(self, phase: str) -> float:
        return min((s for name, s, _ in self.spans if name == phase), default=float("nan"))

    def count_after(self, phase: str, moment: float) -> int:
        """How many spans of ``phase`` started after ``moment``."""
        return sum(1 for name, start, _ in self.spans if name == phase and start > moment)

    def longest(self, phase: str) -> float:
        return max((e - s for name, s, e in self.spans if name == phase), default=float("nan"))

    def median(self, phase: str) -> float:
        """The median span of ``phase`` (nan if it never ran)."""
        return stats.median([e - s for name, s, e in self.spans if name == phase])


@contextlib.contextmanager
def timed_phases() -> Iterator[PhaseLog]:
    log = PhaseLog()
    restore = []
    for module_name, class_name, function_name, phase in PHASES:
        module = submodule(module_name)
        owner = getattr(module, class_name) if class_name else module
        original = owner.__dict__[function_name] if class_name else getattr(owner, function_name)
        restore.append((owner, function_name, original))
        setattr(owner, function_name, _wrapped(original, phase, log))
    try:
        yield log
    finally:
        for owner, function_name, original in reversed(restore):
            setattr(owner, function_name, original)


def _wrapped(original, phase: str, log: PhaseLog):
    def timed(*args, **kwargs):
        started = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            ended = time.monotonic()
            with log.lock:
                log.spans.append((phase, started, ended))

    timed.__wrapped__ = original
    return timed
