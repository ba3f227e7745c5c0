"""What the sandbox saw: the tasks ComfyUI really created (and paid for), found by prompt."""

from __future__ import annotations

import time
import uuid
from typing import Any

WAIT_S = 120.0  # generous bound for anything that normally takes seconds


def unique(text: str) -> str:
    """A prompt no other test uses, so neither the journal nor ComfyUI's cache answers it."""
    return f"{text} [{uuid.uuid4().hex[:10]}]"


def tasks_with_prompt(sandbox: Any, prompt: str) -> list[Any]:
    infos = [sandbox.task_info(task_id) for task_id in sandbox.task_ids()]
    return [info for info in infos if info.prompt == prompt]


def wait_for_polling(sandbox: Any, prompt: str, timeout: float = WAIT_S) -> Any:
    """The task created for ``prompt`` once the node has read its status at least once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = tasks_with_prompt(sandbox, prompt)
        if tasks and tasks[0].status_reads >= 1:
            return tasks[0]
        time.sleep(0.02)
    raise AssertionError(f"no task was created and polled for {prompt!r}")
