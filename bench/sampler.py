"""A small sampling profiler for every thread, so a missed target comes with the reason.

cProfile sees only the thread that started it, and the pack decodes on a thread pool; py-spy
sees everything but is not always installed. This samples ``sys._current_frames()`` every few
milliseconds and counts, per thread role, the innermost line of the pack, Pillow or NumPy being
run (C code called from that line is counted on it). Time spent waiting for work or for the GIL
shows up on the line that waits.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

_INTERESTING = ("/nodes/", "/api/", "/journal/", "PIL/", "numpy/", "torch/", "concurrent/")


@dataclass
class Profile:
    samples: int
    lines: Counter
    """(thread role, "file:line function") -> samples"""

    def table(self, limit: int = 10) -> list[list[str]]:
        rows = []
        for (role, where), count in self.lines.most_common(limit):
            rows.append([role, f"`{where}`", f"{100 * count / max(1, self.samples):.0f} %"])
        return rows


def profile(work: Callable[[], object], seconds: float, interval: float = 0.002) -> Profile:
    """Run ``work`` repeatedly for about ``seconds`` while sampling every thread but this one's
    sampler; returns what the non-idle samples were doing."""
    stop = threading.Event()
    lines: Counter = Counter()
    total = [0]
    own = threading.get_ident()

    def sample() -> None:
        names: dict[int | None, str] = {}
        while not stop.is_set():
            frames = sys._current_frames()
            if any(ident not in names for ident in frames):
                names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in frames.items():
                if ident == sampler.ident:
                    continue
                where = _innermost(frame)
                if where is None:
                    continue
                role = "caller" if ident == own else _role(names.get(ident, "?"))
                if role.endswith("pool") and "futures/thread.py" in where:
                    continue  # an idle pool thread waiting for work
                lines[(role, where)] += 1
                total[0] += 1
            time.sleep(interval)

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    sampler.start()
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            work()
    finally:
        stop.set()
        sampler.join()
    return Profile(total[0], lines)


def _role(thread_name: str) -> str:
    if thread_name.startswith("grok-imagine-decode"):
        return "decode pool"
    if thread_name.startswith("grok-imagine-task"):
        return "task pool"
    return thread_name.split("_")[0].split("-")[0] or "?"


def _innermost(frame) -> str | None:
    while frame is not None:
        filename = frame.f_code.co_filename.replace("\\", "/")
        if any(part in filename for part in _INTERESTING):
            short = "/".join(filename.split("/")[-2:])
            return f"{short}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    return None
