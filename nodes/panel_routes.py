"""The Grok Imagine panel's server routes: the journal, its kept files, the limit, the prices.

All under ``/grok_imagine/`` (ComfyUI also serves them under ``/api/...``):

* ``GET  tasks?offset=&limit=``  a page of the journal, newest first, with today's and this
  month's spend and the daily limit;
* ``GET  thumbnail/{task_id}/{index}`` and ``GET file/{task_id}/{index}``  a kept result file
  (a small JPEG, or the file as kept). Only files in the kept-files folder are served: the task id
  must be a well-formed id, the path comes from the file store and must resolve inside its root;
* ``GET  prices``  what each Grok node costs (the frontend's cost badge; prices live in
  ``api.models`` only);
* ``GET/POST limit``  the daily credit limit in the settings file (the environment wins);
* ``POST resolve``  settle an ``uncertain`` row: the task id found in the dashboard, or
  "not created".

Nothing here exposes the key. Bodies are JSON only (a cross-site form cannot post them), small,
and checked field by field; every refusal is one line in ``{"error": ...}``. Inside ComfyUI this
module loads on the first request (``server_routes`` holds the route table); the journal, PIL and
aiohttp load when a request arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.messages import Fact, said
from ..api.what import What
from .server_routes import PREFIX, RequestRefused, read_json_body, routes_of

if TYPE_CHECKING:
    from aiohttp import web

    from ..journal import FileStore, JournalEntry, TaskRunner
    from ..journal.store import SpendLedger

log = logging.getLogger(__name__)

PAGE_DEFAULT, PAGE_MAX = 50, 200
MAX_OFFSET = 10**9
MAX_BODY_BYTES = 4096
MAX_FILE_INDEX = 999
PROMPT_PREVIEW_CHARS = 160
THUMBNAIL_PX = 160
THUMBNAIL_CACHE = 512
RESOLVE_TIMEOUT_S = 120.0
"""How long ``resolve`` waits for a still-running task before answering (it stays resumable)."""


class Refused(RequestRefused):
    """A request the panel's routes refuse: one line for the user, and the HTTP status."""


@dataclass(frozen=True)
class PanelContext:
    """Where the routes find things; ComfyUI's folders by default, injected by tests."""

    runner: Callable[[], TaskRunner]
    settings_file: Callable[[], Path]
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


def _comfy_context() -> PanelContext:
    from . import comfy_paths, execution

    return PanelContext(execution.make_runner, comfy_paths.settings_file_path)


# -- what the browser may send -------------------------------------------------------------------


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Refused(said(What.WHOLE_NUMBER_PARAM, name=name, low=low, high=high))
    return int(raw)


def _task_id(raw: str) -> str:
    from ..api import errors, validation

    try:
        return validation.validate_task_id(raw)
    except errors.InvalidRequestError as exc:
        raise Refused(exc, status=404) from None


def _file_index(raw: str) -> int:
    if not raw.isdigit() or int(raw) > MAX_FILE_INDEX:
        raise Refused(said(What.NO_SUCH_FILE), status=404)
    return int(raw)


def _json_object(body: bytes, example: Fact) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict):
        raise Refused(said(What.SEND_JSON_LIKE, example=example))
    return payload


def parse_limit_body(body: bytes) -> int | None:
    """``{"limit": 100}`` or ``{"limit": null}`` (no limit) -> the credits to store."""
    from ..journal.spend_limit import MAX_DAILY_LIMIT

    payload = _json_object(body, '{"limit": 100}')
    if set(payload) != {"limit"}:
        example, no_limit = '{"limit": 100}', '{"limit": null}'
        raise Refused(said(What.LIMIT_BODY, example=example, no_limit=no_limit))
    value = payload["limit"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAILY_LIMIT:
        raise Refused(said(What.LIMIT_VALUE, most=MAX_DAILY_LIMIT))
    return value


def parse_resolve_body(body: bytes) -> tuple[int, str | None]:
    """``{"entry": 7, "task_id": "..."}`` or ``{"entry": 7, "not_created": true}``."""
    from ..api import errors, validation

    example = said(
        What.EITHER,
        first='{"entry": 7, "task_id": "..."}',
        second='{"entry": 7, "not_created": true}',
    )
    payload = _json_object(body, example)
    entry = payload.get("entry")
    if isinstance(entry, bool) or not isinstance(entry, int) or not 0 < entry < 2**63:
        raise Refused(said(What.ENTRY_NOT_A_ROW, example=example))
    if set(payload) == {"entry", "not_created"} and payload["not_created"] is True:
        return entry, None
    if set(payload) != {"entry", "task_id"}:
        raise Refused(said(What.SEND_EXAMPLE, example=example))
    try:
        return entry, validation.validate_task_id(payload["task_id"])
    except errors.InvalidRequestError as exc:
        raise Refused(exc) from None


# -- what the panel is told ----------------------------------------------------------------------


def entry_json(entry: JournalEntry) -> dict[str, Any]:
    from ..api.models import UPSCALE_MODEL

    kind = (
        "upscale"
        if entry.model == UPSCALE_MODEL
        else "loaded"
        if entry.identity is None
        else "text-to-image"
    )
    prompt = entry.prompt or ""
    files = []
    if entry.task_id:
        for file in entry.files:
            where = f"{entry.task_id}/{file.index}"
            files.append(
                {
                    "index": file.index,
                    "thumbnail": f"{PREFIX}/thumbnail/{where}",
                    "url": f"{PREFIX}/file/{where}",
                }
            )
    return {
        "id": entry.id,
        "task_id": entry.task_id,
        "state": entry.state,
        "kind": kind,
        "model": entry.model,
        "prompt": prompt[:PROMPT_PREVIEW_CHARS],
        "prompt_truncated": len(prompt) > PROMPT_PREVIEW_CHARS,
        "source_task_id": entry.source_task_id,
        "credits": entry.credits,
        "created_at": entry.created_at,
        "error": entry.error,
        "files": files,
    }


def prices_json() -> dict[str, Any]:
    """Each Grok node's price, from the node's own declaration (prices: ``api.models``)."""
    from . import NODE_CLASS_MAPPINGS

    nodes = {}
    for name, node in NODE_CLASS_MAPPINGS.items():
        cost = getattr(node, "COST", None)
        if cost is not None:
            nodes[name] = {"credits": cost.credits, "per": cost.per, "counted_by": cost.counted_by}
    return {"nodes": nodes}


# -- the routes ----------------------------------------------------------------------------------


class PanelRoutes:
    """The handlers, over an injected context so tests need no ComfyUI."""

    def __init__(self, context: Callable[[], PanelContext] = _comfy_context) -> None:
        self._context = context
        self._thumbnails: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._thumbnails_lock = threading.Lock()

    # -- blocking work (run on a worker thread) --

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        from ..journal.spend_limit import SpendLimitConfigError, day_start, month_start

        context = self._context()
        runner = context.runner()
        journal = _ledger(runner)
        now = runner.clock()
        rows = [entry_json(entry) for entry in journal.page(limit, offset)]
        answer: dict[str, Any] = {
            "offset": offset,
            "limit": limit,
            "total": journal.count(),
            "rows": rows,
            "spent_today": journal.spent(day_start(now)),
            "spent_month": journal.spent(month_start(now)),
        }
        try:
            answer.update(self._limit_json(context))
        except SpendLimitConfigError as exc:
            from .error_phrases import error_phrase
            from .phrases import part_json

            answer.update({"daily_limit": None, "limit_source": None, "limit_error": str(exc)})
            answer["limit_message"] = part_json(error_phrase(exc))
        return answer

    def _limit_json(self, context: PanelContext) -> dict[str, Any]:
        from ..api.env import DAILY_LIMIT_ENV
        from ..journal.spend_limit import read_daily_limit

        limit = read_daily_limit(context.settings_file(), context.environ)
        return {"daily_limit": limit.credits, "limit_source": limit.source, "env": DAILY_LIMIT_ENV}

    def limit(self) -> dict[str, Any]:
        return self._limit_json(self._context())

    def store_limit(self, credits: int | None) -> dict[str, Any]:
        from ..journal.spend_limit import write_daily_limit

        context = self._context()
        path = context.settings_file()
        write_daily_limit(path, credits)
        log.info("Grok Imagine: daily credit limit set to %s in %s", credits, path)
        return self._limit_json(context)

    def kept_file(self, task_id: str, index: int) -> Path:
        """The kept file, or ``Refused(404)``; never a path outside the kept-files folder."""
        files: FileStore = self._context().runner().files
        try:
            path = files.find(task_id, index)
        except ValueError:
            path = None
        if path is None:
            raise Refused(said(What.NO_SUCH_KEPT_FILE), status=404)
        root = files.root.resolve()
        real = path.resolve()
        if not real.is_relative_to(root) or not real.is_file():
            raise Refused(said(What.NO_SUCH_KEPT_FILE), status=404)
        return real

    def thumbnail(self, task_id: str, index: int) -> bytes:
        path = self.kept_file(task_id, index)
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with self._thumbnails_lock:
            cached = self._thumbnails.get(key)
            if cached is not None:
                self._thumbnails.move_to_end(key)
                return cached
        data = _make_thumbnail(path)
        with self._thumbnails_lock:
            self._thumbnails[key] = data
            while len(self._thumbnails) > THUMBNAIL_CACHE:
                self._thumbnails.popitem(last=False)
        return data

    def resolve(self, entry_id: int, task_id: str | None) -> dict[str, Any]:
        runner = self._context().runner()
        _ledger(runner)
        runner.resolve(entry_id, task_id, timeout=RESOLVE_TIMEOUT_S)
        entry = runner.journal.entry(entry_id)
        assert entry is not None
        return {"row": entry_json(entry)}

    # -- HTTP --

    async def handle_tasks(self, request: web.Request) -> web.StreamResponse:
        try:
            offset = _int_param(request.query, "offset", 0, 0, MAX_OFFSET)
            limit = _int_param(request.query, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
        except Refused as exc:
            return _error(exc)
        return await _json(self.page, offset, limit)

    async def handle_prices(self, request: web.Request) -> web.StreamResponse:
        return await _json(prices_json)

    async def handle_get_limit(self, request: web.Request) -> web.StreamResponse:
        return await _json(self.limit)

    async def handle_post_limit(self, request: web.Request) -> web.StreamResponse:
        try:
            credits = parse_limit_body(await _read_json_body(request))
        except Refused as exc:
            return _error(exc)
        return await _json(self.store_limit, credits)

    async def handle_resolve(self, request: web.Request) -> web.StreamResponse:
        try:
            entry_id, task_id = parse_resolve_body(await _read_json_body(request))
        except Refused as exc:
            return _error(exc)
        return await _json(self.resolve, entry_id, task_id)

    async def handle_thumbnail(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        try:
            task_id = _task_id(request.match_info["task_id"])
            index = _file_index(request.match_info["index"])
            data = await asyncio.to_thread(self.thumbnail, task_id, index)
        except Refused as exc:
            return _error(exc)
        except (OSError, ValueError):  # not an image we can read: say so, never a traceback
            return _error(Refused(said(What.NOT_A_PICTURE), status=415))
        return web.Response(
            body=data, content_type="image/jpeg", headers={"Cache-Control": "max-age=3600"}
        )

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        try:
            task_id = _task_id(request.match_info["task_id"])
            index = _file_index(request.match_info["index"])
            path = await asyncio.to_thread(self.kept_file, task_id, index)
        except Refused as exc:
            return _error(exc)
        return web.FileResponse(path, headers={"Cache-Control": "max-age=3600"})


def _ledger(runner: TaskRunner) -> SpendLedger:
    from ..journal.store import SpendLedger

    if not isinstance(runner.journal, SpendLedger):
        raise Refused(said(What.PANEL_OWN_JOURNAL_ONLY, where=runner.journal.where), status=501)
    return runner.journal


def _make_thumbnail(path: Path) -> bytes:
    import io

    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (THUMBNAIL_PX * 2, THUMBNAIL_PX * 2))  # JPEG: decode at a smaller scale
        small = image.convert("RGB")
        small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        out = io.BytesIO()
        small.save(out, "JPEG", quality=80)
        return out.getvalue()


async def _read_json_body(request: web.Request) -> bytes:
    return await read_json_body(request, MAX_BODY_BYTES, said(What.SEND_JSON), Refused)


_NO_STORE = {"Cache-Control": "no-store"}


async def _json(work: Callable[..., dict[str, Any]], *args: Any) -> web.StreamResponse:
    """Run ``work`` on a worker thread; typed failures become one-line JSON errors."""
    from aiohttp import web

    from ..api import errors

    try:
        payload = await asyncio.to_thread(work, *args)
    except Refused as exc:
        return _error(exc)
    except errors.GrokError as exc:
        return _error(Refused(exc, status=_status_of(exc)))
    except OSError as exc:
        reason = exc.strerror or said(What.IO_ERROR)
        return _error(Refused(said(What.NOT_READ_OR_WRITTEN, reason=reason), 500))
    return web.json_response(payload, headers=_NO_STORE)


def _status_of(exc: BaseException) -> int:
    from ..api import errors
    from ..journal.runner import NotUncertainError

    if isinstance(exc, NotUncertainError):
        return 409
    if isinstance(exc, errors.TaskNotFoundError):
        return 404
    if isinstance(exc, (errors.InvalidRequestError, errors.MissingKeyError)):
        return 400
    if isinstance(exc, errors.TaskTimeoutError):
        return 504
    return 502


def _error(exc: Refused) -> web.StreamResponse:
    from aiohttp import web

    return web.json_response(exc.answer(), status=exc.status, headers=_NO_STORE)


def add_routes(routes: Any, panel: PanelRoutes) -> None:
    """Add the panel's routes to an aiohttp ``RouteTableDef`` (a test app's; inside ComfyUI,
    ``server_routes`` adds them)."""
    for method, path, handler in routes_of("panel_routes"):
        routes.route(method, path)(getattr(panel, handler))


def route_target() -> PanelRoutes:
    """What ``server_routes`` hands the panel's requests to (inside ComfyUI)."""
    return PanelRoutes()
