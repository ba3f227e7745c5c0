"""Where the API key and the base URL come from.

Order: the ``APIINONE_API_KEY`` environment variable, else a key file: the path given by the
caller (ComfyUI's Settings entry writes one inside ComfyUI's user folder), else
``GROK_IMAGINE_KEY_FILE``, else the user's config folder (``$XDG_CONFIG_HOME/grok-imagine/api_key``
or ``~/.config/...`` on Linux, ``~/Library/Application Support/grok-imagine/api_key`` on macOS,
``%APPDATA%\\grok-imagine\\api_key`` on Windows). The key file lives outside the node folder, so
updating the pack never loses it, and outside workflows, so a shared workflow never carries it.

``APIINONE_BASE_URL`` (default ``https://apiin.one``) points the same code at the sandbox.

The key is never logged, never put in an exception message and never shown in a repr beyond its
last four characters. Imported when ComfyUI loads the pack: standard library only, and cheap.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .env import BASE_URL_ENV, KEY_ENV, KEY_FILE_ENV
from .errors import (
    AuthError,
    InvalidRequestError,
    MissingKeyError,
    remember_secret,
)
from .messages import Message, english, said
from .what import What

__all__ = [
    "DEFAULT_BASE_URL",
    "KeyInfo",
    "Settings",
    "base_url_from_env",
    "default_key_file",
    "delete_key_file",
    "key_info",
    "key_last4",
    "load_settings",
    "mask_key",
    "normalize_key",
    "read_stored_key",
    "resolve_key_file",
    "validate_key",
    "write_key_file",
]

logger = logging.getLogger("grok_imagine.api")

DEFAULT_BASE_URL = "https://apiin.one"
APP_DIR_NAME = "grok-imagine"
KEY_FILE_NAME = "api_key"
MAX_KEY_FILE_BYTES = 64 * 1024  # a key file is one line; anything bigger is the wrong file
MIN_KEY_CHARS = 8
MAX_KEY_CHARS = 512
_TAIL_SHOWN = 4
_TAIL_MIN_KEY_CHARS = 12
"""Shorter keys show no tail at all: four characters of eleven would be too much of it."""


def key_last4(key: str) -> str | None:
    """The last four characters, or None for a key too short to show any of it."""
    return key[-_TAIL_SHOWN:] if len(key) >= _TAIL_MIN_KEY_CHARS else None


def mask_key(key: str) -> str:
    """``…abcd``: enough to tell two keys apart, never enough to use one."""
    return f"…{key_last4(key) or ''}"


@dataclass(frozen=True)
class Settings:
    """Everything a client needs to know that is not in code. The repr masks the key."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = 10.0
    """Seconds to open a connection (API and file hosts)."""
    read_timeout: float = 30.0
    """Seconds to wait for any answer bytes; a create that outlives it is reported uncertain."""
    download_timeout: float = 300.0
    """Overall seconds for one result file, however slowly it drips."""
    max_download_bytes: int = 64 * 1024 * 1024
    key_origin: Message = field(default_factory=lambda: said(What.KEY_GIVEN_IN_CODE))
    """Where the key came from, for messages: the environment variable or the key file."""

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key:
            raise MissingKeyError(_missing_key_message(None))
        problem = _unsendable(self.api_key)
        if problem:
            raise AuthError(said(What.KEY_UNSENDABLE, key_source=self.key_origin, problem=problem))
        remember_secret(self.api_key)
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
        for name in ("connect_timeout", "read_timeout", "download_timeout"):
            if not float(getattr(self, name)) > 0:
                raise InvalidRequestError(said(What.NOT_POSITIVE_SECONDS, name=name), field=name)
        if self.max_download_bytes < 1:
            raise InvalidRequestError(
                said(What.DOWNLOAD_CAP_NOT_POSITIVE), field="max_download_bytes"
            )

    @property
    def key_source(self) -> str:
        """Where the key came from, in English (status lines, the CLI)."""
        return english(self.key_origin)

    @property
    def masked_key(self) -> str:
        return mask_key(self.api_key)

    def __repr__(self) -> str:
        return (
            f"Settings(api_key={self.masked_key!r}, base_url={self.base_url!r}, "
            f"key_source={self.key_source!r}, connect_timeout={self.connect_timeout}, "
            f"read_timeout={self.read_timeout}, download_timeout={self.download_timeout}, "
            f"max_download_bytes={self.max_download_bytes})"
        )


def load_settings(
    key_file: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from the environment and the key file; ``MissingKeyError`` if there is no key."""
    env = os.environ if environ is None else environ
    base_url = base_url_from_env(env)
    env_key = env.get(KEY_ENV, "")
    if env_key.strip():
        key = normalize_key(env_key, f"the {KEY_ENV} environment variable")
        source = said(What.KEY_FROM_ENV)
        return Settings(api_key=key, base_url=base_url, key_origin=source)

    path = resolve_key_file(key_file, env)
    raw = _read_key_file(path)
    if raw is None or not raw.strip():
        raise MissingKeyError(_missing_key_message(path))
    key = normalize_key(raw, f"the key file {path}")
    origin = said(What.KEY_FROM_FILE, path=str(path))
    return Settings(api_key=key, base_url=base_url, key_origin=origin)


def default_key_file(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user key file: the CLI's ``key set`` writes it, ``load_settings`` reads it."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith("win"):
        appdata = env.get("APPDATA", "").strip()
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
    elif platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_CONFIG_HOME", "").strip()
        # The XDG spec says a relative value is invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / APP_DIR_NAME / KEY_FILE_NAME


def normalize_key(raw: str, source: str = "the key") -> str:
    """The key without stray whitespace, quotes or a ``Bearer`` prefix (logged, never shown)."""
    key = raw.strip()
    lines = [line.strip() for line in key.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("#")]
    if len(lines) > 1:
        logger.warning("%s has several lines; using the first one as the API key", source)
    key = lines[0] if lines else ""
    if key.startswith(f"{KEY_ENV}="):
        key = key[len(KEY_ENV) + 1 :].strip()
    while len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"`":
        key = key[1:-1].strip()
    if key.lower().startswith("bearer "):
        key = key[7:].strip()
    # One final line break is how every editor ends a file: not worth a word. Anything else
    # (spaces, tabs, quotes, several lines, a prefix) is worth a warning: it may not be the key.
    as_saved = raw[:-2] if raw.endswith("\r\n") else raw[:-1] if raw.endswith("\n") else raw
    if key != as_saved:
        logger.warning(
            "%s: removed stray whitespace, quotes or a prefix around the API key", source
        )
    return key


def base_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The API base URL in force (``APIINONE_BASE_URL`` or the default), normalized; needs no key,
    so the journal can tell the real API's tasks from a sandbox's before any client exists."""
    env = os.environ if environ is None else environ
    return normalize_base_url(env.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL)


def normalize_base_url(url: str) -> str:
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(
            said(What.BASE_URL_NOT_HTTP, url=repr(url), default_url=DEFAULT_BASE_URL),
            field="base_url",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidRequestError(
            said(What.BASE_URL_EXTRAS, default_url=DEFAULT_BASE_URL), field="base_url"
        )
    return url


def write_key_file(path: Path | str, key: str) -> Path:
    """Store ``key`` at ``path``, mode 0600, atomically (readers see old or new, never half)."""
    import tempfile

    path = Path(path)
    key = validate_key(key)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file 0600 from the start: never readable by others, not even briefly.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    remember_secret(key)
    return path


def validate_key(raw: object) -> str:
    """A new key as it will be stored: normalized (``normalize_key``), then checked.

    ``errors.InvalidRequestError`` (field ``key``) names the problem without quoting the input.
    """
    if not isinstance(raw, str):
        raise InvalidRequestError(said(What.KEY_NOT_TEXT), field="key")
    key = normalize_key(raw, "the new key")
    if not key:
        raise InvalidRequestError(said(What.KEY_EMPTY), field="key")
    problem = _unsendable(key)
    if problem:
        raise InvalidRequestError(said(What.KEY_CONTAINS, problem=problem), field="key")
    if len(key) < MIN_KEY_CHARS:
        raise InvalidRequestError(said(What.KEY_TOO_SHORT, count=MIN_KEY_CHARS), field="key")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidRequestError(said(What.KEY_TOO_LONG, count=MAX_KEY_CHARS), field="key")
    return key


def read_stored_key(path: Path | str) -> str | None:
    """The key in the file at ``path``, normalized as ``load_settings`` reads it; None when there
    is no file or no key in it. ``MissingKeyError`` when it cannot be read."""
    raw = _read_key_file(Path(path))
    if raw is None:
        return None
    return normalize_key(raw, f"the key file {path}") or None


def delete_key_file(path: Path | str) -> bool:
    """Remove the key file; False when there was none."""
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class KeyInfo:
    """All that is ever shown about the key in force: set or not, from where, its last four."""

    is_set: bool
    source: str | None
    """``"env"`` (``APIINONE_API_KEY``), ``"file"`` or None."""
    last4: str | None
    file_set: bool
    """A key file holds a key (it may be shadowed by the environment variable)."""


def key_info(key_file: Path | str, environ: Mapping[str, str] | None = None) -> KeyInfo:
    """What ``load_settings(key_file, environ)`` would use, masked."""
    env = os.environ if environ is None else environ
    file_key = read_stored_key(key_file)
    env_raw = env.get(KEY_ENV, "")
    env_key = normalize_key(env_raw, f"the {KEY_ENV} environment variable") if env_raw else ""
    if env_key:
        return KeyInfo(True, "env", key_last4(env_key), file_set=file_key is not None)
    if file_key:
        return KeyInfo(True, "file", key_last4(file_key), file_set=True)
    return KeyInfo(False, None, None, file_set=False)


def resolve_key_file(
    key_file: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The key file in force: the argument, else ``GROK_IMAGINE_KEY_FILE``, else the default."""
    env = os.environ if environ is None else environ
    if key_file is not None:
        return Path(key_file).expanduser()
    from_env = env.get(KEY_FILE_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    return default_key_file(env)


def _read_key_file(path: Path) -> str | None:
    """The file's text, None when it does not exist; ``MissingKeyError`` when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise MissingKeyError(said(What.KEY_FILE_IS_A_FOLDER, path=str(path))) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MissingKeyError(
            said(What.KEY_FILE_UNREADABLE, path=str(path), reason=reason)
        ) from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise MissingKeyError(said(What.KEY_FILE_TOO_LARGE, path=str(path)))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MissingKeyError(said(What.KEY_FILE_NOT_TEXT, path=str(path))) from None


def _unsendable(key: str) -> Message | None:
    """Why a key cannot go in an HTTP header, or None (the error never shows the key itself)."""
    for char in key:
        if char.isspace():
            return said(What.A_SPACE)
        if not char.isascii() or not char.isprintable():
            return said(What.NOT_ASCII, code=f"{ord(char):04X}")
    return None


def _missing_key_message(path: Path | None) -> Message:
    where = said(What.THE_KEY_FILE, path=str(path)) if path is not None else said(What.A_KEY_FILE)
    return said(What.NO_KEY_ANYWHERE, where=where)
