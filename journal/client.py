"""What the runner needs of an API client: ``api.GrokClient`` is one; tests may pass another.

A Protocol rather than the class, so a reader (and a type checker) can follow a prompt from the
node to the HTTP request without the journal importing the HTTP stack at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..api.task import DEFAULT_TASK_TIMEOUT_S

if TYPE_CHECKING:
    from ..api.download import Downloaded
    from ..api.task import Task


class ApiClient(Protocol):
    def create_text_to_image(
        self,
        prompt: str,
        aspect_ratio: str | None = None,
        *,
        should_cancel: Callable[[], bool] | None = None,
        rate_limit_wait: float = DEFAULT_TASK_TIMEOUT_S,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> str: ...

    def create_upscale(
        self,
        source_task_id: str,
        *,
        should_cancel: Callable[[], bool] | None = None,
        rate_limit_wait: float = DEFAULT_TASK_TIMEOUT_S,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> str: ...

    def get_task(self, task_id: str) -> Task: ...

    def wait(
        self,
        task_id: str,
        timeout: float | None = DEFAULT_TASK_TIMEOUT_S,
        on_update: Callable[[Task, float], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> Task: ...

    def download(self, url: str) -> Downloaded: ...

    def close(self) -> None: ...


ClientFactory = Callable[[], ApiClient]
"""Makes a new client each call; the runner calls it only when an API call is needed."""


class LazyClient:
    """The API client, made on first use (a reused result never even builds one) and closed at
    the end of the ``with`` block."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: ApiClient | None = None

    def get(self) -> ApiClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def __enter__(self) -> LazyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        close = getattr(self._client, "close", None)  # a test's stand-in may have none
        if close is not None:
            close()
