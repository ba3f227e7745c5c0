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

A node of a kind this process has run before (text-to-image at the same aspect ratio, an
upscale) knows its images' size and count from last time: its batch is allocated, and its memory
faulted in, while the tasks still generate (``ImageBatch.reserve``); a wrong guess is replaced
by the first image's real size before anything is written.

The batch order is the tasks' order, then each task's result order, whatever the arrival order.
A file that cannot be decoded is left out and named; the others are returned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import errors
from ..journal import events
from . import image_tensors

if TYPE_CHECKING:
    import torch

    from ..journal import TaskResult

logger = logging.getLogger(__name__)

_learned: dict[str, tuple[tuple[int, int], int]] = {}
"""Job shape -> (image size, images per task) of this process's last batch of that kind."""


class ResultImages:
    """``on_event`` / ``task_done`` per task as the node runs, then ``finish`` for the batch."""

    def __init__(
        self,
        tasks: int,
        should_cancel: Callable[[], bool] | None = None,
        *,
        shape: str | None = None,
    ) -> None:
        self._tasks = max(1, tasks)
        self._should_cancel = should_cancel
        self._shape = shape
        self._lock = threading.Lock()
        self._jobs: list[Future[None]] = []
        self._batch: image_tensors.ImageBatch | None = None
        self._stride = 0
        """Slots per task: the first task's file count (Grok returns the same count each time)."""
        self._first_total = 0
        learned = _learned.get(shape) if shape else None
        if learned is not None:
            # Seen this kind before: the batch is allocated and its memory faulted in now,
            # while the tasks generate, instead of after they are done.
            size, self._stride = learned
            self._batch = image_tensors.ImageBatch(self._tasks * self._stride)
            self._batch.reserve(size)
        self._seen: dict[int, dict[Path | int, tuple[int, int]]] = {}
        """task -> kept path (or ``id`` of the bytes of a file that could not be kept) -> key,
        for files decoded on arrival."""
        self._order: dict[int, list[object]] = {}

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
                # those pixels now, on this thread, instead of decoding the file again.
                if self._should_cancel is None or not self._should_cancel():
                    batch.add(
                        key, source, decoded=event.decoded, slot=slot, label=label, again=event.path
                    )
            else:
                self._submit(batch, key, source, slot=slot, label=label, again=event.path)
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
        keys: list[object] = []
        late = []
        for rank, path in enumerate(files):
            found = seen.get(path if isinstance(path, Path) else id(path))
            key: object = found if found is not None else (task, "kept", rank)
            if found is None:
                late.append((key, path, rank))
            keys.append(key)
        for key, path, rank in late:
            self._submit(
                batch,
                key,
                path,
                slot=self._slot(task, rank),
                label=_label(result.task_id, rank, len(files)),
            )
        self._order[task] = keys

    def finish(
        self, results: Sequence[tuple[int, TaskResult]]
    ) -> tuple[torch.Tensor, list[tuple[int, errors.GrokError]]]:
        """The batch of the tasks in ``results`` ((task, result), in the node's order), and
        (task, error) for each image left out. Raises if there is no image at all."""
        with self._lock:
            jobs = list(self._jobs)
        wait(jobs)
        order = [key for task, _ in results for key in self._order.get(task, [])]
        if not order or self._batch is None:
            raise errors.BadResponseError("The task finished without any image.")
        images, skipped = self._batch.finish(order)
        if self._shape is not None and self._first_total:
            _learned[self._shape] = ((images.shape[2], images.shape[1]), self._first_total)
        return images, [(_task_of(key), exc) for key, exc in skipped]

    def _batch_for(self, total: int) -> image_tensors.ImageBatch:
        with self._lock:
            self._first_total = self._first_total or max(1, total)
            if self._batch is None:
                self._stride = max(1, total)
                self._batch = image_tensors.ImageBatch(self._tasks * self._stride)
            return self._batch

    def _submit(self, batch: image_tensors.ImageBatch, *args: Any, **kwargs: Any) -> None:
        def decode() -> None:
            if self._should_cancel is None or not self._should_cancel():
                batch.add(*args, **kwargs)  # never raises

        job = image_tensors.decode_pool().submit(decode)
        with self._lock:
            self._jobs.append(job)

    def _slot(self, task: int, index: int) -> int | None:
        return task * self._stride + index if index < self._stride else None


def _task_of(key: object) -> int:
    return key[0] if isinstance(key, tuple) else 0


def _label(task_id: str, index: int, total: int) -> str:
    return f"image {index + 1} of {total} of task {task_id}"
