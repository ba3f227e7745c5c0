"""Where the pack's HTTP routes join ComfyUI's server: one table, each handler loaded on first use.

ComfyUI builds its aiohttp app from ``PromptServer.instance.routes`` after loading custom nodes, so
the table is filled while the pack is imported (and ComfyUI mirrors every route under ``/api``).
The modules that answer (``settings_route``: the key; ``panel_routes``: the journal panel, the
limit, the prices) pull in the key handling, the journal, PIL and aiohttp: they load when their
first request arrives, so ComfyUI's start-up pays only for this table. Standard library only.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ..api.messages import Message, english, said
from ..api.what import What

PREFIX = "/grok_imagine"
KEY_PATH = "/key"

ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", KEY_PATH, "settings_route", "handle_get"),
    ("POST", KEY_PATH, "settings_route", "handle_post"),
    ("GET", "/tasks", "panel_routes", "handle_tasks"),
    ("GET", "/prices", "panel_routes", "handle_prices"),
    ("GET", "/limit", "panel_routes", "handle_get_limit"),
    ("POST", "/limit", "panel_routes", "handle_post_limit"),
    ("POST", "/resolve", "panel_routes", "handle_resolve"),
    ("GET", "/thumbnail/{task_id}/{index}", "panel_routes", "handle_thumbnail"),
    ("GET", "/file/{task_id}/{index}", "panel_routes", "handle_file"),
)
"""(method, path under ``PREFIX``, the module that answers, its handler): every route we serve."""

BODY_CHUNK_BYTES = 1024


class RequestRefused(ValueError):
    """A request a route refuses: one line for the user (never quoting what was sent) and the
    HTTP status to answer with. ``said`` is the line as the pack words it: a message, or one of
    the pack's errors (what happened and what to do)."""

    def __init__(self, said: Message | BaseException, status: int = 400) -> None:
        super().__init__(english(said) if isinstance(said, Message) else str(said))
        self.said = said
        self.status = status

    def answer(self) -> dict[str, object]:
        """The JSON body: ``error``, the English line (what older pages show), and ``message``,
        the same as message keys and facts, which the page words in the UI's language."""
        from .error_phrases import error_phrase, what_phrase
        from .phrases import part_json

        said = self.said
        part = what_phrase(said) if isinstance(said, Message) else error_phrase(said)
        return {"error": str(self), "message": part_json(part)}


async def read_json_body(
    request: Any,
    limit: int,
    wrong_type: Message,
    refused: type[RequestRefused] = RequestRefused,
) -> bytes:
    """The body of a JSON request, at most ``limit`` bytes, or ``refused`` (415, 413).

    A JSON content type makes a cross-site browser request pre-flight, so a page elsewhere cannot
    post to our routes through a plain form."""
    if request.content_type != "application/json":
        raise refused(wrong_type, status=415)
    if request.content_length is not None and request.content_length > limit:
        raise refused(said(What.REQUEST_TOO_LARGE), status=413)
    data = bytearray()
    async for chunk in request.content.iter_chunked(BODY_CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise refused(said(What.REQUEST_TOO_LARGE), status=413)
    return bytes(data)


_targets: dict[str, Any] = {}
_targets_lock = threading.Lock()


def routes_of(module: str) -> list[tuple[str, str, str]]:
    """(method, full path, handler name) of one module's routes (tests mount them on their app)."""
    return [(m, PREFIX + path, handler) for m, path, owner, handler in ROUTES if owner == module]


def register_if_in_comfyui() -> bool:
    """Add every route to ComfyUI's server when running inside ComfyUI; a no-op anywhere else."""
    server_module = sys.modules.get("server")
    prompt_server = getattr(getattr(server_module, "PromptServer", None), "instance", None)
    routes = getattr(prompt_server, "routes", None)
    if routes is None:
        return False
    if any(getattr(route, "path", None) == PREFIX + KEY_PATH for route in routes):
        return True
    for method, path, module, handler in ROUTES:
        routes.route(method, PREFIX + path)(_on_first_use(module, handler))
    return True


def _on_first_use(module: str, handler: str) -> Callable[[Any], Awaitable[Any]]:
    async def handle(request: Any) -> Any:
        return await getattr(_target(module), handler)(request)

    handle.__name__ = f"grok_imagine_{handler}"
    return handle


def _target(module: str) -> Any:
    """The module's handler object (``route_target()``), made once per process."""
    with _targets_lock:
        target = _targets.get(module)
        if target is None:
            loaded = importlib.import_module(f".{module}", __package__)
            target = _targets[module] = loaded.route_target()
        return target
