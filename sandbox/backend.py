"""What the request handlers need from the running sandbox, as a Protocol.

The handlers (``http_base``, ``api_handler``, ``file_host``) talk to this, and ``server.Sandbox``
implements it, so imports run one way: ``server`` -> handlers -> ``http_base`` -> ``backend``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .config import SandboxConfig
    from .faults import Faults
    from .shapes import TaskView
    from .store import Store, TaskInfo
    from .validation import CreateRequest


class Backend(Protocol):
    """The sandbox as its handlers see it: state, fault switches and the task store."""

    config: SandboxConfig
    faults: Faults
    store: Store

    @property
    def stopping(self) -> bool: ...

    def wait_unless_stopping(self, seconds: float) -> bool: ...

    def note_create_request(self) -> None: ...

    def record_file_request(self, path: str, had_authorization: bool) -> None: ...

    def take_create_fault(self) -> int | None: ...

    def take_status_fault(self) -> int | str | None: ...

    def accept(self, key: str, request: CreateRequest) -> str: ...

    def view(self, info: TaskInfo) -> TaskView: ...

    def file_extension(self, info: TaskInfo) -> str: ...

    def expired(self, info: TaskInfo) -> bool: ...

    def image_bytes(self, info: TaskInfo, index: int) -> bytes: ...
