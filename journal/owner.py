"""Which process wrote a journal row, and whether that process is still alive.

A row left in ``creating`` means "a create may be on the wire". If the process that wrote it is
still running, another process must wait for it; if it died (``kill -9`` mid-request), nobody will
ever write the task id, and the row has to be reported as uncertain. A row left in ``waiting``
(its create waited for its turn) was never sent: a dead owner's is settled as such. A pid alone
cannot tell: pids are reused. So each row also carries a start marker of the owning process (its
start time where the OS tells it), and a live process with the same pid but another start is a
stranger.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

_LINUX_PREFIX = "linux-start:"
_TOKEN_PREFIX = "token:"


@dataclass(frozen=True)
class ProcessOwner:
    pid: int
    marker: str

    def is_current(self) -> bool:
        return self == current_owner()

    def is_alive(self) -> bool:
        """True unless we can tell the process has ended (unknowable cases count as alive)."""
        if self.pid == os.getpid():
            return self.is_current()
        if self.marker.startswith(_LINUX_PREFIX):
            start = _linux_start_time(self.pid)
            return start is not None and f"{_LINUX_PREFIX}{start}" == self.marker
        return _pid_exists(self.pid)


_cached: tuple[int, str] | None = None


def current_owner() -> ProcessOwner:
    """This process; recomputed after a fork, since a child is a different owner."""
    global _cached
    pid = os.getpid()
    if _cached is None or _cached[0] != pid:
        start = _linux_start_time(pid)
        marker = f"{_LINUX_PREFIX}{start}" if start else f"{_TOKEN_PREFIX}{uuid.uuid4().hex}"
        _cached = (pid, marker)
    return ProcessOwner(*_cached)


def _linux_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _pid_exists(pid: int) -> bool:
    if sys.platform == "win32":
        return _windows_pid_exists(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence check only (never used on Windows, where it kills)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def _windows_pid_exists(pid: int) -> bool:  # pragma: no cover - exercised on Windows only
    import ctypes

    process_query_limited_information = 0x1000
    still_active = 259
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)
