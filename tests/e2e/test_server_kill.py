"""ComfyUI killed with SIGKILL while a node polls a paid task: after a restart, queueing the same
prompt resumes that task. Its own ComfyUI (killed on purpose) and base directory, so the journal
that survives the crash is the one the restarted ComfyUI reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from e2e.api_graphs import Graph
from e2e.comfyui_server import ComfyUIServer
from e2e.sandbox_view import WAIT_S, tasks_with_prompt, unique, wait_for_polling

pytestmark = pytest.mark.e2e


def test_sigkill_mid_poll_then_restart_resumes_the_same_task(
    comfyui_factory: Callable[..., ComfyUIServer], e2e_sandbox: Any, timings: Any
) -> None:
    comfy = comfyui_factory("comfyui-killed")
    text = unique("e2e crash-proof lighthouse")
    graph = Graph(comfy.object_info())
    graph.save(graph.text_to_image(text), "e2e-killed")
    comfy.queue(graph.nodes)

    task = wait_for_polling(e2e_sandbox, text)
    assert task.state in ("queued", "running"), task.state
    comfy.kill()

    comfy.start()
    timings.record("restart_after_sigkill_s", comfy.startup_seconds[-1])
    began = time.monotonic()
    entry = comfy.run(graph.nodes, timeout=WAIT_S)
    timings.record("resume_after_restart_s", time.monotonic() - began)

    assert [t.task_id for t in tasks_with_prompt(e2e_sandbox, text)] == [task.task_id]
    saved = comfy.saved_images(entry)
    assert len(saved) == task.image_count and all(p.is_file() for p in saved)
