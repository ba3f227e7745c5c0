"""Shared set-up for benchmarks that talk to an in-process sandbox on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from pack import submodule

T = TypeVar("T")

BENCH_KEY = "sk-bench-local-0000"
BENCH_CREDITS = 10_000_000


@contextlib.contextmanager
def sandbox(**config: Any) -> Iterator[Any]:
    """A started sandbox with one well-funded key, no rate limit, no faults."""
    sandbox_module = submodule("sandbox")
    settings = sandbox_module.SandboxConfig(keys={BENCH_KEY: BENCH_CREDITS}, **config)
    with sandbox_module.Sandbox(settings) as running:
        yield running


def client_settings(base_url: str) -> Any:
    return submodule("api.config").Settings(api_key=BENCH_KEY, base_url=base_url)


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for a block (the nodes read the key and base URL there)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class PreRenderer:
    """Render each new task's result files while it is generating, as the real provider does.

    The sandbox draws a result image the first time it is downloaded; the real API's files exist
    the moment the task completes. Without this, the node benchmarks would time the sandbox's
    drawing (tens of ms per image, on the same two cores) as if it were download time. A task's
    files are drawn once it is ``DRAW_AT`` of the way through its generation: drawn at once,
    eight tasks' 48 images took a second of CPU beside the node's creates, and were timed there.
    """

    DRAW_AT = 0.25

    def __init__(self, running_sandbox: Any, interval: float = 0.02) -> None:
        self._sandbox = running_sandbox
        self._interval = interval
        self._stop = threading.Event()
        self._seen: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="bench-prerender", daemon=True)

    def __enter__(self) -> PreRenderer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            for task_id in self._sandbox.task_ids():
                if task_id in self._seen:
                    continue
                info = self._sandbox.task_info(task_id)
                if info.progress < self.DRAW_AT and info.done_at is None:
                    continue
                self._seen.add(task_id)
                for index in range(info.image_count):
                    if self._stop.is_set():
                        return
                    self._sandbox.image_bytes(info, index)


@contextlib.contextmanager
def node_environment(running_sandbox: Any, home: str, poll_scale: float = 1.0) -> Iterator[None]:
    """The environment a node reads outside ComfyUI: key, base URL, journal home, poll scale."""
    values = {
        "APIINONE_API_KEY": BENCH_KEY,
        "APIINONE_BASE_URL": running_sandbox.base_url,
        "GROK_IMAGINE_HOME": home,
        "GROK_IMAGINE_KEY_FILE": os.path.join(home, "no-key-file"),
    }
    if poll_scale != 1:
        values["GROK_IMAGINE_POLL_SCALE"] = repr(poll_scale)
    saved_scale = os.environ.pop("GROK_IMAGINE_POLL_SCALE", None)
    try:
        with environment(**values):
            yield
    finally:
        submodule("nodes.execution").close_journals()
        if saved_scale is not None:
            os.environ["GROK_IMAGINE_POLL_SCALE"] = saved_scale


def run_text_to_image_node(prompt: str, seed: int, parallel_tasks: int = 1) -> tuple[Any, ...]:
    """Call Grok Text-to-Image's function directly (no ComfyUI), the way ComfyUI's prompt
    worker does (``on_prompt_worker``)."""
    function = text_to_image_function()
    return on_prompt_worker(lambda: function(prompt, seed, parallel_tasks=parallel_tasks))


def text_to_image_function() -> Any:
    """A new Grok Text-to-Image node's function (``generate``), as ComfyUI calls it."""
    from pack import load_pack

    node_class = load_pack().NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]
    return getattr(node_class(), node_class.FUNCTION)


def on_prompt_worker(coroutine: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run`` of the coroutine on a thread other than the main one, as ComfyUI's
    prompt worker runs a prompt's async nodes.

    On the main thread ``asyncio.run`` installs a Ctrl-C handler; putting the old one back on
    the way out, Python 3.11's ``signal.signal`` formats the replaced handler's repr, which
    includes the finished task's result: the IMAGE tensor's printed summary, 7-25 ms here that
    ComfyUI never pays.
    """
    import asyncio

    outcome: dict[str, Any] = {}

    async def main() -> T:
        return await coroutine()

    def work() -> None:
        try:
            outcome["result"] = asyncio.run(main())
        except BaseException as exc:  # re-raised on the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="bench-prompt-worker")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
