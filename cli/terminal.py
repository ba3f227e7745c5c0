"""A few lines kept at the bottom of a terminal and redrawn in place (plain ANSI escapes).

Why not a terminal library: what is drawn is N short lines, rewritten by moving the cursor up N
lines and clearing to the end of the screen; every terminal the CLI meets on Linux and macOS
(xterm, VTE, iTerm2, tmux, screen, Windows Terminal over SSH) understands these two escapes.
A library (``rich`` is the usual choice) would add a dependency several times the size of the
pack for the same two escapes. Lines are cut to the terminal's width, so none wraps and the
count of lines to move up stays exact. Anything else is plain lines (``is_live_terminal``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TextIO

_UP = "\x1b[{n}A\r"
_CLEAR_BELOW = "\x1b[J"


def is_live_terminal(stream: TextIO) -> bool:
    """Draw live lines on ``stream``? Only a real terminal that understands cursor movement:
    not a pipe or a file (logs and CI get plain lines), not ``TERM=dumb``, not Windows' console
    (which needs a mode switch this code does not make)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.name != "nt" and os.environ.get("TERM", "") != "dumb"


class LiveBlock:
    """The lines drawn last, at the bottom; ``draw`` rewrites them and can print lines above."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._drawn = 0

    def draw(self, lines: Sequence[str], above: Sequence[str] = ()) -> None:
        """Print ``above`` (kept for good) where the block was, then the block's ``lines``."""
        width = self._width()
        out = [_UP.format(n=self._drawn) if self._drawn else "\r", _CLEAR_BELOW]
        out += [line + "\n" for line in above]
        out += [_fit(line, width) + "\n" for line in lines]
        self._stream.write("".join(out))
        self._stream.flush()
        self._drawn = len(lines)

    def release(self) -> None:
        """Leave the block's lines on screen as they are; the next draw starts below them."""
        self._drawn = 0

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 80


def _fit(line: str, width: int) -> str:
    """``line`` cut to one column less than the terminal (a full-width line wraps on some)."""
    room = max(10, width - 1)
    return line if len(line) <= room else line[: room - 1] + "…"
