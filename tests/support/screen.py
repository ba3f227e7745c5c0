"""A program on a pseudo-terminal, and just enough of a terminal to read what it drew.

``Screen`` understands what the CLI's live lines use (text, CR, LF, cursor up, clear below) and
keeps every frame it was fed, so a test can ask what was on screen at some point, not only at
the end. Anything else it meets fails the test: an escape the CLI should not send.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import time
from pathlib import Path

ESCAPE = re.compile(r"\x1b\[(\d*)([AJK])")


class Screen:
    def __init__(self, columns: int = 120) -> None:
        self.columns = columns
        self.rows: list[str] = [""]
        self.row = 0
        self.col = 0
        self.frames: list[list[str]] = []
        self._pending = ""

    def feed(self, text: str) -> None:
        text = self._pending + text
        self._pending = ""
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                match = ESCAPE.match(text, i)
                if match is None:
                    if len(text) - i < 8:  # cut in the middle: wait for the rest
                        self._pending = text[i:]
                        break
                    raise AssertionError(f"unexpected escape {text[i : i + 8]!r}")
                self._escape(int(match.group(1) or 1), match.group(2))
                i = match.end()
                continue
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.row += 1
                self.col = 0
                while len(self.rows) <= self.row:
                    self.rows.append("")
            else:
                line = self.rows[self.row].ljust(self.col)
                self.rows[self.row] = line[: self.col] + ch + line[self.col + 1 :]
                self.col += 1
            i += 1
        self.frames.append(self.lines())

    def _escape(self, count: int, kind: str) -> None:
        if kind == "A":
            self.row = max(0, self.row - count)
        elif kind == "J":
            self.rows[self.row] = self.rows[self.row][: self.col]
            del self.rows[self.row + 1 :]
        elif kind == "K":
            self.rows[self.row] = ""

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.rows if line.strip()]


def run_in_pty(
    argv: list[str], env: dict[str, str], cwd: Path, screen: Screen, limit_s: float = 60.0
) -> int:
    """Run ``argv`` with a pseudo-terminal of ``screen.columns`` as its stdin, stdout and stderr;
    feed everything it writes to ``screen``; return its exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, screen.columns, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # LF stays LF, as the program wrote it
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm"}, cwd=cwd
    )
    os.close(slave)
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the program has ended and closed its end
                break
            if not chunk:
                break
            screen.feed(chunk.decode("utf-8", errors="replace"))
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
