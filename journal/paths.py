"""Where the journal and the kept files live outside ComfyUI (the CLI, scripts).

Inside ComfyUI the nodes pass ComfyUI's user and output directories instead, so results sit
next to the user's other outputs. Nothing here touches the disk: callers create what they use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..api.env import HOME_ENV

APP_DIR_NAME = "grok-imagine"
JOURNAL_FILE_NAME = "journal.sqlite"
FILES_DIR_NAME = "files"


def default_home() -> Path:
    """``$GROK_IMAGINE_HOME``, else the platform's per-user data directory + ``grok-imagine``."""
    explicit = os.environ.get(HOME_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP_DIR_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_DIR_NAME
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base_dir = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base_dir / APP_DIR_NAME


def journal_path(home: str | os.PathLike[str] | None = None) -> Path:
    return Path(home if home is not None else default_home()) / JOURNAL_FILE_NAME


def files_root(home: str | os.PathLike[str] | None = None) -> Path:
    return Path(home if home is not None else default_home()) / FILES_DIR_NAME
