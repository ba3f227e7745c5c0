"""A node's status (``nodes/status_board.py``'s structure) made into the text an English UI shows.

The same rules as ``web/js/grok_imagine_format.js`` (``tests/test_status_phrases.py`` runs both on
the same statuses and compares), so the Python tests can read what the node says.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from . import PACK_DIR

LOCALES_DIR = PACK_DIR / "locales"


@cache
def catalog(language: str = "en") -> dict[str, Any]:
    return json.loads((LOCALES_DIR / language / "main.json").read_text(encoding="utf-8"))[
        "grokImagine"
    ]


@cache
def node_names(language: str = "en") -> dict[str, str]:
    defs = json.loads((LOCALES_DIR / language / "nodeDefs.json").read_text(encoding="utf-8"))
    return {node_type: entry["display_name"] for node_type, entry in defs.items()}


def _lookup(words: dict[str, Any], key: str) -> str | None:
    value: Any = words
    for name in key.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


def _template(words: dict[str, Any], key: str, params: dict[str, Any]) -> str | None:
    count = params.get("count")
    if isinstance(count, int) and not isinstance(count, bool):
        form = _lookup(words, f"{key}_{'one' if count == 1 else 'other'}")
        if form is not None:
            return form
    return _lookup(words, key)


def _string(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def render(part: Any, words: dict[str, Any] | None = None) -> str:
    """A phrase (``{"key", "params"}``) or a plain part, in ``words`` (English by default)."""
    words = catalog() if words is None else words
    if part is None:
        return ""
    if not isinstance(part, dict):
        return _string(part)
    params = part.get("params") or {}
    text = _template(words, part["key"], params)
    if text is None:
        return str(part["key"])
    made = re.sub(
        r"\{(\w+)\}",
        lambda m: render(params[m.group(1)], words) if m.group(1) in params else m.group(0),
        text,
    )
    return made.rstrip(".\u3002") if part.get("clause") else made


# Words every language keeps (the tests of the Chinese words allow them): product names,
# environment variables, protocols and formats, commands, JSON field names in quotes.
KEPT = re.compile(
    r"API in One|Grok Imagine|Grok|ComfyUI|PostgreSQL|Pillow|Settings\.max_download_bytes"
    r"|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|`[^`]*`|https?://\S+|postgresql://\S+|\b[A-Z]{2,}[0-9]*\b"
    r"|max_download_bytes|task_id|parallel_tasks|\bMiB\b|\bNot Found\b|\bU\+[0-9A-F]{4}\b"
    r"|Content-Length|application/json|--[\w-]+|\boff\b|http\(s\)|WebM|Matroska|postgresql://"
    "|\u201c\\w+\u201d"
)


def english_words(text: str) -> list[str]:
    """The English words in ``text`` beside those every language keeps."""
    return re.findall(r"[A-Za-z]{2,}", KEPT.sub(" ", text))


def without_facts(part: Any) -> Any:
    """A phrase's JSON with every text fact made a neutral mark (the words left are the pack's)."""
    if isinstance(part, dict):
        params = {k: without_facts(v) for k, v in part["params"].items()}
        return {**part, "params": params}
    return "\u00b7" if isinstance(part, str) else part


def say(key: str, words: dict[str, Any] | None = None, **params: Any) -> str:
    return render({"key": key, "params": params}, words)


def status_lines(status: dict[str, Any], language: str = "en") -> list[str]:
    words = catalog(language)
    title = node_names(language).get(status.get("nodeType", ""), status.get("nodeType", ""))
    separator = say("status.separator", words)
    lines = [say("status.header", words, title=title, seconds=status["seconds"])]
    if status.get("refusal"):
        lines.append(render(status["refusal"], words))
    for task in status.get("tasks", []):
        parts = [render(task["label"], words)] if task.get("label") else []
        parts.append(render(task["state"], words))
        if task.get("seconds") is not None:
            parts.append(say("status.seconds", words, seconds=task["seconds"]))
        if task.get("taskId"):
            parts.append(say("status.taskId", words, taskId=task["taskId"]))
        if task.get("cost"):
            parts.append(render(task["cost"], words))
        if task.get("note"):
            parts.append(render(task["note"], words))
        lines.append(separator.join(parts))
    lines.extend(render(warning, words) for warning in status.get("warnings", []))
    return lines


def status_text(status: dict[str, Any], language: str = "en") -> str:
    return "\n".join(status_lines(status, language))
