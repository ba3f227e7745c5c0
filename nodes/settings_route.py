"""The Settings entry's server route: the browser hands the API key over once, then only the
server knows it.

``GET /grok_imagine/key`` and ``POST /grok_imagine/key`` (ComfyUI also serves both under
``/api/...``) answer with a masked status only: set or not, where it comes from, the last four
characters. The key itself lives in a 0600 file in ComfyUI's user directory, outside
``user/default/`` so ComfyUI's own ``/userdata`` API cannot hand it out, and outside the node
folder so updates never overwrite it. ``APIINONE_API_KEY`` in the environment wins over the file,
exactly as the nodes read it. Reading, normalising, validating, masking and writing the key are
``api.config``'s (one home for the key, shared with the CLI and the nodes); this is HTTP only.

Inside ComfyUI this module loads on the first request (``server_routes`` holds the route table);
aiohttp is imported when a request arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import config, errors
from ..api.config import KeyInfo
from ..api.messages import said
from ..api.what import What
from .server_routes import KEY_PATH, PREFIX, RequestRefused, read_json_body

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

ROUTE_PATH = PREFIX + KEY_PATH
MAX_BODY_BYTES = 4096


class KeyRejected(RequestRefused):
    """A request the route refuses. The message is shown to the user and never holds the key."""


def _to_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "set": info.is_set,
        "source": info.source,
        "last4": info.last4,
        "file_set": info.file_set,
    }


def default_key_file() -> Path:
    """The nodes' key file (``comfy_paths.key_file_path()``), resolved per request so
    ``--user-directory`` is honoured."""
    from .comfy_paths import key_file_path

    return key_file_path()


def parse_body(body: bytes) -> str:
    """``{"key": "..."}`` -> the key as it will be stored ('' to remove), via
    ``api.config.validate_key``, the one validator the CLI uses too."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KeyRejected(_SEND_KEY_JSON) from None
    if not isinstance(payload, dict) or "key" not in payload:
        raise KeyRejected(_SEND_KEY_JSON)
    raw = payload["key"]
    if isinstance(raw, str) and not raw.strip():
        return ""
    try:
        return config.validate_key(raw)
    except errors.InvalidRequestError as exc:
        raise KeyRejected(exc) from None


_SEND_KEY_JSON = said(What.SEND_JSON_LIKE, example='{"key": "..."}')


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

    def status(self) -> KeyInfo:
        return config.key_info(self.key_file(), self._environ)

    def store(self, key: str) -> KeyInfo:
        """Write (or, for '', remove) the key file and return the new masked status."""
        path = self.key_file()
        if key:
            config.write_key_file(path, key)
            log.info("Grok Imagine: API key saved to %s", path)
        else:
            config.delete_key_file(path)
            log.info("Grok Imagine: API key file %s removed", path)
        return self.status()

    async def handle_get(self, request: web.Request) -> web.StreamResponse:
        try:
            status = await asyncio.to_thread(self.status)
        except errors.MissingKeyError as exc:  # the file exists but cannot be read
            return _error(KeyRejected(exc, 500))
        return _answer(status)

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_json_body(
                request, MAX_BODY_BYTES, said(What.SEND_KEY_AS_JSON), KeyRejected
            )
            key = parse_body(body)
        except KeyRejected as exc:
            return _error(exc)
        try:
            status = await asyncio.to_thread(self.store, key)
        except OSError as exc:
            reason = exc.strerror or said(What.IO_ERROR)
            return _error(KeyRejected(said(What.KEY_NOT_WRITTEN, reason=reason), 500))
        except errors.MissingKeyError as exc:
            return _error(KeyRejected(exc, 500))
        return _answer(status)


_NO_STORE = {"Cache-Control": "no-store"}


def _answer(status: KeyInfo) -> web.StreamResponse:
    from aiohttp import web

    return web.json_response(_to_json(status), headers=_NO_STORE)


def _error(refused: KeyRejected) -> web.StreamResponse:
    from aiohttp import web

    return web.json_response(refused.answer(), status=refused.status, headers=_NO_STORE)


def route_target() -> KeyRoute:
    """What ``server_routes`` hands the key route's requests to (inside ComfyUI)."""
    return KeyRoute()
