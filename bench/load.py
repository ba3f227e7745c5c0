"""A CPU-bound process that keeps one core busy, for the busy-machine figures.

The benchmark starts it and stops it itself, so a "busy" figure always means the same thing:
one core taken by a pure-Python loop that touches no memory to speak of, the other one left to
the pack (and to whatever else the shared machine runs; the report quotes the load average).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

_SPIN = "import time\nwhile True:\n    time.perf_counter()\n"


@contextlib.contextmanager
def one_core_busy() -> Iterator[int]:
    """Run a spinning child process for the block; yields its pid."""
    spinner = subprocess.Popen([sys.executable, "-c", _SPIN])
    try:
        time.sleep(0.3)  # let it start and take its core
        yield spinner.pid
    finally:
        spinner.terminate()
        try:
            spinner.wait(timeout=5)
        except subprocess.TimeoutExpired:
            spinner.kill()
            spinner.wait()
