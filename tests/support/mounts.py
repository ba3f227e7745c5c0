"""Real filesystem faults for the tests: a small tmpfs that fills up, a read-only remount.

Mounting needs root (CI runs as root); elsewhere the tests that use these skip with the reason.
Every mount is unmounted when its test ends, whatever happened.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Mount:
    """A tmpfs mounted at ``path``; ``fill()`` takes its free space, ``read_only()`` remounts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler.bin"

    def fill(self, leave: int = 0) -> None:
        """Write zeros until the disk is full (or only ``leave`` bytes remain)."""
        with open(self.filler, "ab") as out:
            block = bytes(64 * 1024)
            while True:
                stats = os.statvfs(self.path)
                room = stats.f_bavail * stats.f_frsize - leave
                if room <= 0:
                    break
                try:
                    out.write(block[: min(len(block), room)])
                    out.flush()
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break

    def free_up(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self) -> None:
        _run("mount", "-o", "remount,ro", str(self.path))

    def writable(self) -> None:
        _run("mount", "-o", "remount,rw", str(self.path))


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")


def mount_problem() -> str | None:
    """Why a tmpfs cannot be mounted here (None when it can)."""
    if os.name != "posix" or not Path("/proc/mounts").exists():
        return "mounting a tmpfs needs Linux"
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CI runs as root)"
    return None


@contextmanager
def tmpfs(path: Path, size: str = "16m") -> Iterator[Mount]:
    """A tmpfs of ``size`` at ``path`` for the duration of the block (skips if not permitted)."""
    import pytest

    problem = mount_problem()
    if problem:
        pytest.skip(problem)
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield Mount(path)
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
