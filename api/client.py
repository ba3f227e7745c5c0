"""``GrokClient``: create, read, wait for and download Grok Imagine tasks through API in One.

The public face of ``api/``; the nodes, the journal's runner and the CLI use nothing else to
talk to the API. Every method validates its input before any request (a typo costs nothing),
and every failure is one of ``errors``' classes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import errors
from .config import Settings, load_settings, mask_key
from .download import Downloaded, download, make_download_session
from .http_errors import Call, map_api_error
from .messages import said
from .models import TEXT_TO_IMAGE_MODEL, UPSCALE_MODEL
from .polling import PollSchedule, wait_for_task
from .retries import ONE_TRY, STATUS_READ, RetryPolicy
from .task import DEFAULT_TASK_TIMEOUT_S, Task
from .task_reader import body_error, parse_task, read_created_task_id
from .transport import Transport, origin_of
from .validation import validate_aspect_ratio, validate_prompt, validate_task_id
from .what import What

if TYPE_CHECKING:
    import requests

__all__ = ["CREATE_PATH", "TASK_PATH", "TEXT_TO_IMAGE_MODEL", "UPSCALE_MODEL", "GrokClient"]

logger = logging.getLogger("grok_imagine.api")

CREATE_PATH = "/api/v1/images/generations"
TASK_PATH = "/api/v1/tasks/"
MAX_REMEMBERED_CREATES = 1024


class GrokClient:
    """Talks to API in One for Grok Imagine. Thread-safe for concurrent calls; close() when done.

    ``settings`` default to ``load_settings()`` (env, then key file). ``poll`` defaults to the
    adaptive schedule (``GROK_IMAGINE_POLL_SCALE`` scales it, for the sandbox). ``session`` lets a
    caller bring its own ``requests.Session`` for the API (it is not closed here); result files
    always go through a separate session that never carries the key. ``timeouts`` is
    ``(connect, read)`` in seconds and overrides the settings' values.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        poll: PollSchedule | None = None,
        session: requests.Session | None = None,
        timeouts: tuple[float, float] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.poll = poll if poll is not None else PollSchedule.from_env()
        self._transport = Transport(self.settings, session=session, timeouts=timeouts)
        self._download_session: requests.Session | None = None
        self._lock = threading.Lock()
        self._created_at: dict[str, float] = {}
        self._api_origin = origin_of(self.settings.base_url)
        self._closed = False

    # -- creating tasks (these cost credits) ------------------------------------------------------

    def create_text_to_image(
        self,
        prompt: str,
        aspect_ratio: str | None = None,
        should_cancel: Callable[[], bool] | None = None,
        *,
        rate_limit_wait: float = DEFAULT_TASK_TIMEOUT_S,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> str:
        """Start a text-to-image task (5 credits); returns its task id at once.

        A create refused with HTTP 429 (nothing created) is sent again after ``Retry-After``,
        for at most ``rate_limit_wait`` seconds in all; ``on_rate_limited(seconds)`` hears each
        wait first and ``should_cancel`` is heard during it (nothing is created then)."""
        body: dict[str, Any] = {"model": TEXT_TO_IMAGE_MODEL, "prompt": validate_prompt(prompt)}
        if aspect_ratio:  # sent only when chosen: the seed page does not document it
            body["aspect_ratio"] = validate_aspect_ratio(aspect_ratio)
        call = Call("create", model=TEXT_TO_IMAGE_MODEL)
        return self._create(body, call, should_cancel, rate_limit_wait, on_rate_limited)

    def create_upscale(
        self,
        source_task_id: str,
        should_cancel: Callable[[], bool] | None = None,
        *,
        rate_limit_wait: float = DEFAULT_TASK_TIMEOUT_S,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> str:
        """Start an upscale of a finished text-to-image task (12 credits); returns its task id.
        HTTP 429 is waited out as for ``create_text_to_image``."""
        source = validate_task_id(source_task_id)
        body = {"model": UPSCALE_MODEL, "task_id": source}
        call = Call("create", task_id=source, model=UPSCALE_MODEL)
        return self._create(body, call, should_cancel, rate_limit_wait, on_rate_limited)

    # -- reading tasks (free) ---------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        """One status read, normalized whatever shape the API answered in; a passing HTTP or
        connection failure is tried again a couple of times (``retries.STATUS_READ``)."""
        return self._read_task(validate_task_id(task_id), STATUS_READ)

    def _read_task(self, task_id: str, policy: RetryPolicy) -> Task:
        call = Call("status", task_id=task_id)
        payload = self._transport.get_json(TASK_PATH + quote(task_id, safe=""), call, policy)
        found = body_error(payload)
        if found is not None:
            code, message = found
            if code == 501:  # upstream's "generation failed", possibly with the task beside it
                try:
                    task = parse_task(payload, task_id)
                except errors.BadResponseError:
                    task = None
                if task is not None and task.done:
                    return task
            raise map_api_error(code, message, call, self.settings)
        return parse_task(payload, task_id)

    def wait(
        self,
        task_id: str,
        timeout: float | None = DEFAULT_TASK_TIMEOUT_S,
        on_update: Callable[[Task, float], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Task:
        """Poll until the task succeeds (returned, with at least one result URL) or fails.

        Raises ``TaskFailedError`` / ``ModerationError``; ``TaskTimeoutError`` after ``timeout``
        seconds (None: no limit; the task keeps running server-side, wait again to resume);
        ``CancelledError`` when ``should_cancel()`` turns true (checked at least every 0.25 s,
        also while a status read is in flight); or the read's own non-passing error.
        """
        task_id = validate_task_id(task_id)
        with self._lock:
            created_at = self._created_at.get(task_id)
        return wait_for_task(
            lambda: self._read_task(task_id, ONE_TRY),  # the poll loop is the retry layer
            task_id,
            schedule=self.poll,
            timeout=timeout,
            on_update=on_update,
            should_cancel=should_cancel,
            created_at=created_at,
        )

    # -- result files -----------------------------------------------------------------------------

    def download(self, url: str) -> Downloaded:
        """Fetch one result file (streamed, capped, checked to be an image)."""
        if not isinstance(url, str) or not url.strip():
            raise errors.DownloadError(said(What.RESULT_URL_EMPTY))
        url = url.strip()
        headers = None
        if origin_of(url) == self._api_origin:  # the key goes to the API's own origin only
            headers = {"Authorization": f"Bearer {self.settings.api_key}"}
        settings = self.settings
        return download(
            url,
            self._files_session(),
            timeouts=self._transport.timeouts,
            deadline_s=settings.download_timeout,
            max_bytes=settings.max_download_bytes,
            headers=headers,
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            files, self._download_session = self._download_session, None
        self._transport.close()
        if files is not None:
            files.close()

    def __enter__(self) -> GrokClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        key = mask_key(self.settings.api_key)
        return f"GrokClient(base_url={self.settings.base_url!r}, key={key!r})"

    # -- internals --------------------------------------------------------------------------------

    def _create(
        self,
        body: dict[str, Any],
        call: Call,
        should_cancel: Callable[[], bool] | None,
        rate_limit_wait: float,
        on_rate_limited: Callable[[float], None] | None,
    ) -> str:
        payload = self._transport.post_json(
            CREATE_PATH,
            body,
            call,
            should_cancel,
            rate_limit_wait=rate_limit_wait,
            on_rate_limited=on_rate_limited,
        )
        found = body_error(payload)
        if found is not None:
            raise map_api_error(found[0], found[1], call, self.settings)
        task_id = read_created_task_id(payload)
        if task_id is None:
            raise errors.BadResponseError(said(What.CREATE_WITHOUT_ID))
        try:
            task_id = validate_task_id(task_id)
        except errors.InvalidRequestError:
            raise errors.BadResponseError(said(What.CREATE_ODD_ID)) from None
        logger.info("created task %s (%s)", task_id, body["model"])
        with self._lock:
            if len(self._created_at) >= MAX_REMEMBERED_CREATES:
                self._created_at.pop(next(iter(self._created_at)))
            self._created_at[task_id] = time.monotonic()
        return task_id

    def _files_session(self) -> requests.Session:
        with self._lock:
            if self._closed:
                raise errors.DownloadError(said(What.CLIENT_CLOSED))
            if self._download_session is None:
                self._download_session = make_download_session()
            return self._download_session
