"""``Sandbox``: the running server and the handle tests and the CLI hold.

Two listeners on 127.0.0.1 (the API, and the file host standing in for the provider's CDN, which
is another origin), a ``Store`` for accounts and tasks, the fault switches, and a cache of rendered
images. ``stop()`` is prompt: it wakes every sleeping or blocked handler and joins every thread.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from . import images
from .api_handler import ApiHandler
from .config import ASPECT_SIZES, DEFAULT_ASPECT_RATIO, UPSCALE, SandboxConfig
from .faults import Faults
from .file_host import FileHandler, file_path
from .http_base import Listener
from .shapes import COMPLETED, TaskView
from .store import Ledger, NewTask, Store, TaskInfo
from .validation import CreateRequest

MODERATION_REASON = (
    "Content policy violation: the prompt was flagged by moderation. Credits were refunded."
)
GENERATION_FAILED_REASON = (
    "Generation failed: the upstream model returned an error. Credits were refunded."
)
IMAGE_CACHE_SIZE = 256


@dataclass(frozen=True)
class FileRequest:
    path: str
    had_authorization: bool


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None, faults: Faults | None = None) -> None:
        self.config = config or SandboxConfig()
        self.faults = faults or Faults()
        self.store = Store(self.config.keys, self.config.rate_limit)
        self._rng = random.Random(self.config.seed)
        self._lock = threading.Lock()  # rng draws, fault queues, request records
        self._stopping = threading.Event()
        self._create_requests = 0
        self._accepted = 0
        self._file_requests: list[FileRequest] = []
        self._images: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._render_locks: dict[tuple[str, int], threading.Lock] = {}
        self._images_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._threads: list[threading.Thread] = []
        self._api: Listener | None = None
        self._files: Listener | None = None
        self._started = False
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._started:
            raise RuntimeError("this sandbox was already started; make a new one")
        self._started = True
        try:
            self._api = self._listen(self.config.port, ApiHandler, "api")
            self._files = (
                self._listen(self.config.file_port, FileHandler, "files")
                if self.config.separate_file_host
                else self._api
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _listen(self, port: int, handler: type, role: str) -> Listener:
        listener = Listener(port, handler, self, role)
        self._listeners.append(listener)
        thread = threading.Thread(
            target=listener.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"grok-sandbox-{role}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()
        return listener

    def stop(self) -> None:
        """Stop serving, wake and close every connection, join every thread. Safe to repeat."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        # End the accept loops together; a poke wakes each one from its poll at once.
        enders = [
            threading.Thread(target=listener.shutdown, name="grok-sandbox-stop")
            for listener in self._listeners
        ]
        for ender in enders:
            ender.start()
        for listener in self._listeners:
            listener.poke()
        for ender in enders:
            ender.join()
        for listener in self._listeners:
            listener.close_connections()  # blocked reads and writes end
            listener.server_close()  # joins the connection threads
        for thread in self._threads:
            thread.join()

    def serve_forever(self) -> None:
        """Block until Ctrl-C (or ``stop()`` from another thread), then stop cleanly."""
        if not self._started:
            self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait_unless_stopping(self, seconds: float) -> bool:
        """Sleep inside a handler; True (at once) when the sandbox is stopping."""
        return self._stopping.wait(seconds)

    # -- addresses --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._api is None:
            raise RuntimeError("the sandbox is not started")
        return f"http://127.0.0.1:{self._api.port}"

    @property
    def file_base_url(self) -> str:
        if self._files is None:
            raise RuntimeError("the sandbox is not started")
        return f"http://127.0.0.1:{self._files.port}"

    # -- inspection -------------------------------------------------------------------------------

    def ledger(self, key: str) -> Ledger:
        return self.store.ledger(key)

    def task_info(self, task_id: str) -> TaskInfo:
        return self.store.info(task_id)

    def task_ids(self) -> list[str]:
        return self.store.task_ids()

    @property
    def create_requests(self) -> int:
        """Every create request received, accepted or not."""
        with self._lock:
            return self._create_requests

    @property
    def file_requests(self) -> list[FileRequest]:
        with self._lock:
            return list(self._file_requests)

    def __repr__(self) -> str:
        where = self.base_url if self._api is not None else "not started"
        return f"Sandbox({where}, {self.config!r})"

    # -- used by the handlers ---------------------------------------------------------------------

    def note_create_request(self) -> None:
        with self._lock:
            self._create_requests += 1

    def record_file_request(self, path: str, had_authorization: bool) -> None:
        with self._lock:
            self._file_requests.append(FileRequest(path, had_authorization))

    def take_create_fault(self) -> int | None:
        with self._lock:
            queue = self.faults.create_errors
            return queue.pop(0) if queue else None

    def take_status_fault(self) -> int | str | None:
        """The next injected status-read fault, consumed exactly once."""
        with self._lock:
            faults = self.faults
            if faults.status_errors:
                return faults.status_errors.pop(0)
            for counter in ("malformed_json", "html_error", "error_in_body"):
                remaining = getattr(faults, counter)
                if remaining > 0:
                    setattr(faults, counter, remaining - 1)
                    return counter
            return None

    def accept(self, key: str, request: CreateRequest) -> str:
        """Draw the task's fate, then let the store check limits and charge. Returns the id."""
        faults = self.faults
        low, high = self.config.generation_bounds
        cycle = self.config.generation_times
        with self._lock:
            if cycle:
                generation_time = cycle[self._accepted % len(cycle)]
            else:
                generation_time = self._rng.uniform(low, high) if high > low else low
            self._accepted += 1
            roll = self._rng.random()
        word = faults.moderation_word
        fails_with = fail_code = None
        if word and request.prompt and word.lower() in request.prompt.lower():
            fails_with, fail_code = MODERATION_REASON, "content_policy_violation"
        elif roll < faults.failure_rate:
            fails_with, fail_code = GENERATION_FAILED_REASON, "generation_failed"
        return self.store.create(
            NewTask(
                key=key,
                model=request.model,
                prompt=request.prompt,
                aspect_ratio=request.aspect_ratio,
                source_task_id=request.source_task_id,
                generation_time=generation_time,
                image_count=1 if request.model == UPSCALE else self.config.images_per_task,
                fails_with=fails_with,
                fail_code=fail_code,
                stuck=faults.stuck,
            )
        )

    def view(self, info: TaskInfo) -> TaskView:
        urls: tuple[str, ...] = ()
        if info.state == COMPLETED:
            extension = self.file_extension(info)
            urls = tuple(
                self.file_base_url + file_path(info.task_id, index, extension)
                for index in range(info.image_count)
            )
        return TaskView(
            task_id=info.task_id,
            model=info.model,
            phase=info.state,
            progress=info.progress,
            urls=urls,
            error=info.fail_reason,
            fail_code=info.fail_code,
            created_unix=info.created_unix,
        )

    def file_extension(self, info: TaskInfo) -> str:
        return "png" if self.config.image_format == "PNG" else "jpg"

    def expired(self, info: TaskInfo) -> bool:
        expiry = self.config.file_expiry
        if expiry is None or info.done_at is None:
            return False
        return time.monotonic() - info.done_at >= expiry

    def image_bytes(self, info: TaskInfo, index: int) -> bytes:
        """Render on first request, then serve from a bounded cache (images are deterministic)."""
        cache_key = (info.task_id, index)
        with self._images_lock:
            if cache_key in self._images:
                self._images.move_to_end(cache_key)
                return self._images[cache_key]
            render_lock = self._render_locks.setdefault(cache_key, threading.Lock())
        with render_lock:  # one render per image even when several clients ask at once
            with self._images_lock:
                if cache_key in self._images:
                    return self._images[cache_key]
            data = self._render(info, index)
            with self._images_lock:
                self._images[cache_key] = data
                self._render_locks.pop(cache_key, None)
                while len(self._images) > IMAGE_CACHE_SIZE:
                    self._images.popitem(last=False)
        return data

    def _render(self, info: TaskInfo, index: int) -> bytes:
        image_format = self.config.image_format
        if info.model == UPSCALE:
            source = self.store.info(info.source_task_id or "")
            source_bytes = self.image_bytes(source, 0)
            return images.upscale(source_bytes, image_format, source.task_id)
        size = self.config.image_size or ASPECT_SIZES[info.aspect_ratio or DEFAULT_ASPECT_RATIO]
        return images.render(info.prompt, index, size, image_format, info.task_id)
