"""The node's IMAGE batch, decoded while its tasks still run.

Each result file goes into its place in the batch the moment the runner keeps it
(``events.FileKept``), while the other files and tasks are still downloading or generating; so
when the last task finishes, only its own files are left to convert. A fresh download comes
already decoded (the runner decodes every file to check it before keeping it): its pixels are
written on the spot, on the download's thread, and the file is never decoded twice. A file that
comes as bytes only is decoded on the small decode pool; files that come without an event (a
result kept from an earlier run) are decoded from their paths there as soon as their task is
done. The pool, not the download threads, does the decoding: eight tasks download up to 32
files at once, and as many decodes at once on two cores would only fight over them.

The batch order is the tasks' order, then each task's result order, whatever the arrival order.
A file that cannot be decoded is left out and named; the others are returned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import errors
from ..api.messages import Message, said
from ..api.what import What
from ..journal import events
from .image_tensors import ImageBatch, Key

if TYPE_CHECKING:
    import torch

    from ..journal import TaskResult

logger = logging.getLogger(__name__)


class ResultImages:
    """``on_event`` / ``task_done`` per task as the node runs, then ``finish`` for the batch."""

    def __init__(self, tasks: int, should_cancel: Callable[[], bool] | None = None) -> None:
        self._tasks = max(1, tasks)
        self._should_cancel = should_cancel
        self._lock = threading.Lock()
        self._batch: ImageBatch | None = None
        self._stride = 0
        """Slots per task: the first task's file count (Grok returns the same count each time)."""
        self._seen: dict[int, dict[Path | int, Key]] = {}
        """task -> kept path (or ``id`` of the bytes of a file that could not be kept) -> key,
        for files decoded on arrival."""
        self._order: dict[int, list[Key]] = {}

    def on_event(self, task: int, event: events.RunEvent) -> None:
        """Decode a freshly kept file into its slot now; never raises (see ``finish``)."""
        if not isinstance(event, events.FileKept):
            return
        source = event.data if event.data is not None else event.path
        if source is None:
            return
        key = (task, event.index)
        try:
            batch = self._batch_for(event.total)
            with self._lock:  # an unkept file is found again by its bytes (the same object)
                seen_as = event.path if event.path is not None else id(event.data)
                self._seen.setdefault(task, {})[seen_as] = key
            slot = self._slot(task, event.index)
            label = _label(event.task_id, event.index, event.total)
            if event.decoded is not None:
                # The runner decoded it to check it and closes it once this returns: write
                # those pixels now, on this thread, instead of decoding the file again. (The
                # path, when kept, is what a second pass would read: it costs no memory.)
                again = event.path if event.path is not None else source
                batch.add(key, again, slot=slot, label=label, decoded=event.decoded)
            else:
                batch.submit(key, source, slot=slot, label=label)
        except Exception:  # the file is kept; task_done decodes it from its path instead
            logger.warning("Grok Imagine: decoding a kept file on arrival failed", exc_info=True)

    def task_done(self, task: int, result: TaskResult) -> None:
        """Settle the task's place in the order; decode any file that came without an event."""
        files = list(result.images)  # kept files, and the bytes of any that could not be kept
        if not files:
            self._order[task] = []
            return
        batch = self._batch_for(len(files))
        with self._lock:
            seen = dict(self._seen.get(task, {}))
        keys: list[Key] = []
        for rank, path in enumerate(files):
            found = seen.get(path if isinstance(path, Path) else id(path))
            key: Key = found if found is not None else (task, "kept", rank)
            if found is None:
                label = _label(result.task_id, rank, len(files))
                batch.submit(key, path, slot=self._slot(task, rank), label=label)
            keys.append(key)
        self._order[task] = keys

    def finish(
        self, results: Sequence[tuple[int, TaskResult]]
    ) -> tuple[torch.Tensor, list[tuple[int, errors.GrokError]]]:
        """The batch of the tasks in ``results`` ((task, result), in the node's order), and
        (task, error) for each image left out. Raises if there is no image at all."""
        order = [key for task, _ in results for key in self._order.get(task, [])]
        if not order or self._batch is None:
            raise errors.BadResponseError(said(What.NO_IMAGE))
        images, skipped = self._batch.finish(order)
        return images, [(_task_of(key), exc) for key, exc in skipped]

    def _batch_for(self, total: int) -> ImageBatch:
        with self._lock:
            if self._batch is None:
                self._stride = max(1, total)
                self._batch = ImageBatch(self._tasks * self._stride, cancelled=self._should_cancel)
            return self._batch

    def _slot(self, task: int, index: int) -> int | None:
        return task * self._stride + index if index < self._stride else None


def _task_of(key: Key) -> int:
    return key[0] if isinstance(key, tuple) else 0


def _label(task_id: str, index: int, total: int) -> Message:
    return said(What.IMAGE_OF_TASK, number=index + 1, count=total, task_id=task_id)
