"""What a run gives back: the task, its kept files, and what this run charged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    files: list[Path] = field(default_factory=list)
    """The kept files, in result order."""
    urls: tuple[str, ...] = ()
    reused: bool = False
    """Served from the journal and the kept files: no API call at all."""
    resumed: bool = False
    """An earlier, unfinished task was polled again instead of creating a new one."""
    credits: int = 0
    """What this run charged: the task's price for a new task, else 0."""
    sources: tuple[Path | bytes, ...] = ()
    """Every image of this run in result order: its kept file, or its bytes when it arrived but
    could not be written to disk (returned from memory, not kept). Empty means ``files``."""

    @property
    def images(self) -> tuple[Path | bytes, ...]:
        """What the node converts: ``sources`` when set, else the kept ``files``."""
        return self.sources or tuple(self.files)
