"""What the CLI shows on stderr while tasks run, drawn from the runner's typed events.

On a terminal each task of the run has one line (state, elapsed seconds, task id) kept at the
bottom and redrawn in place; the elapsed seconds tick from the moment the task's job starts, with
no extra API read. Lines worth keeping (a task created and what it cost, resumed, reused, files
lost) are printed above them. Anywhere else (a pipe, a log, CI) it is plain lines: one per event,
and one per change of a task's state (not per percent).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from ..journal import events
from .terminal import LiveBlock, is_live_terminal
from .tracks import Phase, TaskTrack

if TYPE_CHECKING:
    from ..journal import RunHooks

_LIVE_ONLY = (
    events.TaskUpdated,
    events.Downloading,
    events.FileKept,
    events.WaitingForThread,
    events.WaitingForTask,
)
"""On a terminal these only change the task's line; everywhere else they are lines of their own
(``FileKept`` never is: six of them per task say nothing a log needs)."""


class Progress:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self._stream = stream or sys.stderr
        if live is None:
            live = is_live_terminal(self._stream)
        self._block = LiveBlock(self._stream) if live else None
        self._lock = threading.Lock()
        self.tracks: list[TaskTrack] = []
        """Every task of the command, for the interrupt message."""
        self._batch: list[TaskTrack] = []
        self._drawn: list[str] = []

    @property
    def live(self) -> bool:
        return self._block is not None

    # -- a batch of tasks ------------------------------------------------------------------------

    def begin(self, labels: Sequence[str]) -> list[TaskTrack]:
        """Tracks for a batch of tasks run side by side; on a terminal, their lines appear."""
        with self._lock:
            self._batch = [TaskTrack(label) for label in labels]
            self.tracks.extend(self._batch)
            self._redraw()
            return list(self._batch)

    def end_batch(self) -> None:
        """The batch's lines stay on screen as last drawn; later lines go below them."""
        with self._lock:
            self._redraw()
            if self._block is not None:
                self._block.release()
            self._batch, self._drawn = [], []

    def tick(self) -> None:
        """Redraw the lines if a clock second changed (called while the tasks run)."""
        with self._lock:
            self._redraw()

    def hooks(self, track: TaskTrack, should_cancel: Callable[[], bool]) -> RunHooks:
        from ..journal import RunHooks

        def on_event(event: events.RunEvent) -> None:
            with self._lock:
                before = track.state
                event = track.apply(event)
                line = self._line_for(track, event, before)
                if line is None:
                    self._redraw()
                else:
                    self._write([line])

        return RunHooks(on_event=on_event, should_cancel=should_cancel)

    def _line_for(self, track: TaskTrack, event: events.RunEvent, before: str) -> str | None:
        """The line ``event`` is worth keeping, or None when it only changes the task's line."""
        if isinstance(event, events.FileKept):
            return None
        if self._block is not None and isinstance(event, _LIVE_ONLY):
            return None
        if isinstance(event, events.TaskUpdated) and track.state.split()[0] == before.split()[0]:
            return None  # a log gets a line per state, not per percent
        return f"[{track.label}] {events.describe(event)}"

    def finished(self, track: TaskTrack, images: int | None) -> None:
        with self._lock:
            count = "" if images is None else f", {images} image{'s' if images != 1 else ''}"
            track.end(Phase.DONE, f"done{count}")
            self._redraw()

    def failed(self, track: TaskTrack, *, stopped: bool) -> None:
        """The task's job ended with an error; ``stopped``: because the user stopped the run
        (the task itself is where it was, which the interrupt message says)."""
        with self._lock:
            failed = Phase.FAILED if track.phase is Phase.FAILED else Phase.ERROR
            track.end(track.phase if stopped else failed, "stopped" if stopped else "failed")
            self._redraw()

    # -- lines -------------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A line kept for good (above the live lines on a terminal)."""
        with self._lock:
            self._write([text])

    def _write(self, lines: list[str]) -> None:
        if self._block is None:
            self._stream.write("".join(line + "\n" for line in lines))
            self._stream.flush()
            return
        self._drawn = [track.live_line() for track in self._batch]
        self._block.draw(self._drawn, above=lines)

    def _redraw(self) -> None:
        if self._block is None:
            return
        lines = [track.live_line() for track in self._batch]
        if lines != self._drawn:
            self._drawn = lines
            self._block.draw(lines)
