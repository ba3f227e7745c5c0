"""Where the pack keeps its things: inside ComfyUI's folders when it runs there, else the defaults.

Inside ComfyUI (detected by ComfyUI's own ``folder_paths`` module being loaded; it is never
imported here otherwise):

* API key file: ``<user dir>/grok_imagine/api_key`` (``settings.json`` beside it: the daily
  credit limit, nothing secret), next to ``user/default/`` rather than in it,
  so ComfyUI's ``/userdata`` API cannot serve it, and outside the node folder, which updates
  overwrite;
* journal: ``<user dir>/grok_imagine/journal.sqlite``, or the shared database that
  ``GROK_IMAGINE_JOURNAL_URL`` names (a fleet of workers, see docs/scale-out.md);
* kept result files: ``<output dir>/grok_imagine/<task id>/``, next to the user's other outputs.

Outside ComfyUI (tests, scripts) the journal package's home and the api package's key file apply;
``GROK_IMAGINE_KEY_FILE`` names the key file in both cases.
Every call resolves afresh, so ComfyUI's ``--user-directory`` / ``--output-directory`` are honoured.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..api import config
from ..api.env import KEY_FILE_ENV
from ..journal.paths import JOURNAL_FILE_NAME, files_root, journal_path

PACK_DIR_NAME = "grok_imagine"
"""Our folder inside ComfyUI's user directory (key file, journal) and output directory (files)."""


def key_file_path() -> Path:
    """The API key file the nodes read and the Settings entry writes.

    ``GROK_IMAGINE_KEY_FILE`` (the api package's override) wins everywhere, so the nodes, the
    Settings entry and the CLI agree on one file when the user names it.
    """
    explicit = os.environ.get(KEY_FILE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    folder_paths = _folder_paths()
    if folder_paths is not None:
        return Path(folder_paths.get_user_directory()) / PACK_DIR_NAME / config.KEY_FILE_NAME
    return config.resolve_key_file()


def settings_file_path() -> Path:
    """The pack's non-secret settings (the daily credit limit), beside the key file."""
    from ..journal.spend_limit import SETTINGS_FILE_NAME

    return key_file_path().with_name(SETTINGS_FILE_NAME)


def journal_file_path() -> Path:
    folder_paths = _folder_paths()
    if folder_paths is not None:
        return Path(folder_paths.get_user_directory()) / PACK_DIR_NAME / JOURNAL_FILE_NAME
    return journal_path()


def journal_target() -> str | Path:
    """The shared journal's URL when ``GROK_IMAGINE_JOURNAL_URL`` is set, else the local file."""
    from ..journal.open import journal_url_from_env

    return journal_url_from_env() or journal_file_path()


def files_dir() -> Path:
    """Root of the kept result files (one folder per task id below it)."""
    folder_paths = _folder_paths()
    if folder_paths is not None:
        return Path(folder_paths.get_output_directory()) / PACK_DIR_NAME
    return files_root()


def _folder_paths() -> Any:
    return sys.modules.get("folder_paths")
