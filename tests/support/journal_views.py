"""Views of a journal and a files folder that only tests need (the product never asks for them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_RESULT_FILE = re.compile(r"^(\d+)\.[a-z0-9]{1,8}$")


def history(journal: Any, identity: Any) -> list[Any]:
    """Every attempt at one request, oldest first (failed ones stay on record)."""
    return [e for e in reversed(journal.recent(1_000_000)) if e.identity == identity.key]


def kept_paths(store: Any, task_id: str) -> list[Path]:
    """The kept result files of a task, in result order (notes and temporary files left out)."""
    folder = store.task_dir(task_id)
    if not folder.is_dir():
        return []
    numbered = []
    for path in folder.iterdir():
        match = _RESULT_FILE.match(path.name)
        if match and path.is_file():
            numbered.append((int(match.group(1)), path))
    return [path for _, path in sorted(numbered)]
