"""The Settings entry's server route: the browser hands the API key over once, then only the
server knows it.

``GET /grok_imagine/key`` and ``POST /grok_imagine/key`` (ComfyUI also serves both under
``/api/...``) answer with a masked status only: set or not, where it comes from, the last four
characters. The key itself lives in a 0600 file in ComfyUI's user directory, outside
``user/default/`` so ComfyUI's own ``/userdata`` API cannot hand it out, and outside the node
folder so updates never overwrite it. ``APIINONE_API_KEY`` in the environment wins over the file,
exactly as the nodes read it.

Nothing here runs at import: ``register_if_in_comfyui()`` adds the routes only when ComfyUI's
``server.PromptServer.instance`` already exists; aiohttp is imported when a request arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

ENV_VAR = "APIINONE_API_KEY"
ROUTE_PATH = "/grok_imagine/key"
MIN_KEY_LENGTH = 8
MAX_KEY_LENGTH = 512
MAX_BODY_BYTES = 4096
_MASK_VISIBLE = 4


class KeyRejected(ValueError):
    """A request the route refuses. The message is shown to the user and never holds the key."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class KeyStatus:
    """All the browser is ever told about the key."""

    is_set: bool
    source: str | None  # "env" | "file" | None
    last4: str | None
    file_set: bool  # a key file exists (it may be shadowed by the environment variable)

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.is_set,
            "source": self.source,
            "last4": self.last4,
            "file_set": self.file_set,
        }


# --- where the key lives ------------------------------------------------------------------------


def default_key_file() -> Path:
    """The nodes' key file (``comfy_paths.key_file_path()``), resolved per request so
    ``--user-directory`` is honoured."""
    from .comfy_paths import key_file_path

    return key_file_path()


def read_key_file(path: Path) -> str | None:
    """The stored key, or None when there is no file or it is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return text.strip() or None


def write_key_file(path: Path, key: str) -> None:
    """Store the key with mode 0600, atomically (the one writer, shared with the CLI)."""
    from ..api.config import write_key_file as api_write_key_file

    api_write_key_file(path, key)


def delete_key_file(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()


# --- what the user may send ---------------------------------------------------------------------


def validate_key(raw: object) -> str:
    """The key to store ('' means "remove it"), or KeyRejected with a message that names the
    problem without quoting the input."""
    if not isinstance(raw, str):
        raise KeyRejected('"key" must be a string.')
    key = raw.strip()
    if not key:
        return ""
    if key[:7].lower() == "bearer ":
        raise KeyRejected('Paste the key alone, without the "Bearer " prefix.')
    if not all("!" <= ch <= "~" for ch in key):
        raise KeyRejected(
            "The key may only contain printable ASCII characters without spaces; "
            "check that nothing else was copied along with it."
        )
    if len(key) < MIN_KEY_LENGTH:
        raise KeyRejected(f"That key is too short (at least {MIN_KEY_LENGTH} characters).")
    if len(key) > MAX_KEY_LENGTH:
        raise KeyRejected(f"That key is too long (at most {MAX_KEY_LENGTH} characters).")
    return key


def parse_body(body: bytes) -> str:
    """``{"key": "..."}`` -> the validated key ('' to remove)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KeyRejected('Send JSON like {"key": "..."}.') from None
    if not isinstance(payload, dict) or "key" not in payload:
        raise KeyRejected('Send JSON like {"key": "..."}.')
    return validate_key(payload["key"])


def _last4(key: str) -> str | None:
    # A short key would be half revealed by its tail; show nothing then.
    return key[-_MASK_VISIBLE:] if len(key) >= 2 * _MASK_VISIBLE else None


# --- the route ----------------------------------------------------------------------------------


class KeyRoute:
    """The two handlers, with the key file and environment injected so tests need no ComfyUI."""

    def __init__(
        self,
        key_file: Callable[[], Path] | Path = default_key_file,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._key_file = key_file
        self._environ = environ

    def key_file(self) -> Path:
        return self._key_file if isinstance(self._key_file, Path) else self._key_file()

    def status(self) -> KeyStatus:
        file_key = read_key_file(self.key_file())
        env_key = (self._environ.get(ENV_VAR) or "").strip()
        if env_key:
            return KeyStatus(True, "env", _last4(env_key), file_set=file_key is not None)
        if file_key:
            return KeyStatus(True, "file", _last4(file_key), file_set=True)
        return KeyStatus(False, None, None, file_set=False)

    def store(self, key: str) -> KeyStatus:
        """Write (or, for '', remove) the key file and return the new masked status."""
        path = self.key_file()
        if key:
            write_key_file(path, key)
            log.info("Grok Imagine: API key saved to %s", path)
        else:
            delete_key_file(path)
            log.info("Grok Imagine: API key file %s removed", path)
        return self.status()

    async def handle_get(self, request: web.Request) -> web.StreamResponse:
        try:
            status = await asyncio.to_thread(self.status)
        except OSError as exc:
            return _error(500, f"Could not read the key file: {exc.strerror or 'I/O error'}.")
        return _answer(status)

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        try:
            _require_json(request)
            key = parse_body(await _read_limited(request, MAX_BODY_BYTES))
        except KeyRejected as exc:
            return _error(exc.status, str(exc))
        try:
            status = await asyncio.to_thread(self.store, key)
        except OSError as exc:
            return _error(500, f"Could not write the key file: {exc.strerror or 'I/O error'}.")
        return _answer(status)


def _require_json(request: web.Request) -> None:
    # A JSON content type makes a cross-site browser request pre-flight, so a page elsewhere
    # cannot silently replace the user's key with its own through a plain form post.
    if request.content_type != "application/json":
        raise KeyRejected("Send the key as application/json.", status=415)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise KeyRejected("Request too large.", status=413)
    data = bytearray()
    async for chunk in request.content.iter_chunked(1024):
        data += chunk
        if len(data) > limit:
            raise KeyRejected("Request too large.", status=413)
    return bytes(data)


_NO_STORE = {"Cache-Control": "no-store"}


def _answer(status: KeyStatus) -> web.StreamResponse:
    from aiohttp import web

    return web.json_response(status.to_json(), headers=_NO_STORE)


def _error(http_status: int, message: str) -> web.StreamResponse:
    from aiohttp import web

    return web.json_response({"error": message}, status=http_status, headers=_NO_STORE)


def register_if_in_comfyui() -> bool:
    """Add the routes to ComfyUI's server when running inside ComfyUI; a no-op anywhere else.

    ComfyUI builds its aiohttp app from ``PromptServer.instance.routes`` after loading custom
    nodes, so adding to that table while the pack is imported is enough (and ComfyUI mirrors
    every route under ``/api``).
    """
    server_module = sys.modules.get("server")
    prompt_server = getattr(getattr(server_module, "PromptServer", None), "instance", None)
    routes = getattr(prompt_server, "routes", None)
    if routes is None:
        return False
    if any(getattr(route, "path", None) == ROUTE_PATH for route in routes):
        return True
    key_route = KeyRoute()
    routes.get(ROUTE_PATH)(key_route.handle_get)
    routes.post(ROUTE_PATH)(key_route.handle_post)
    return True
