"""What happened, as a kind and its facts (``Message``), and its English, made in one place.

A message names a ``What`` kind and the facts its words need. A fact is a provider's words, a
path, a number (made text where it is not a whole number, so every renderer shows it alike), or
another message (a fragment, worded in turn). ``english`` makes the line; the browser makes the
same from the locale files with the same placeholder rule (``{name}``, filled once, no format
specs; an unknown name stays as it is): ``web/js/grok_imagine_format.js``.

Standard library only: imported when ComfyUI loads the pack.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Union

from .env import BASE_URL_ENV, CREATE_RATE_ENV, DAILY_LIMIT_ENV, JOURNAL_URL_ENV, KEY_ENV
from .what import What

__all__ = ["CONSTANTS", "Fact", "Message", "english", "fill", "said", "template"]

PLACEHOLDER = re.compile(r"\{(\w+)\}")
CONSTANTS: Mapping[str, str] = {
    "key_env": KEY_ENV,
    "base_url_env": BASE_URL_ENV,
    "journal_url_env": JOURNAL_URL_ENV,
    "create_rate_env": CREATE_RATE_ENV,
    "daily_limit_env": DAILY_LIMIT_ENV,
}
"""Names a kind's words may use that are not facts: the environment variables (``api/env.py``).
They are filled into the locale files' words too, so the browser is never sent them."""

Fact = Union[str, int, "Message"]


@dataclass(frozen=True)
class Message:
    """``kind``'s words with ``facts`` filled in; ``clause``: shown inside another sentence,
    without its final full stop."""

    kind: What
    facts: Mapping[str, Fact] = field(default_factory=dict)
    clause: bool = False

    def as_clause(self) -> Message:
        return replace(self, clause=True)

    def with_texts(self, change: Callable[[str], str]) -> Message:
        """This message with ``change`` applied to every text fact, nested ones too."""
        facts = {
            name: value.with_texts(change)
            if isinstance(value, Message)
            else change(value)
            if isinstance(value, str)
            else value
            for name, value in self.facts.items()
        }
        return replace(self, facts=facts)


def said(kind: What, **facts: Fact) -> Message:
    """``said(What.TASK, task_id="tsk_1")``: a message; facts are text, whole numbers or
    messages (never a bool, a float or None: each renderer would show those its own way)."""
    for name, value in facts.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, Message)):
            raise TypeError(f"fact {name!r} of {kind.name} is {type(value).__name__}")
    return Message(kind, facts)


def fill(template: str, values: Mapping[str, object], show: Callable[[object], str] = str) -> str:
    """``template`` with each ``{name}`` in ``values`` replaced by ``show(value)``, in one pass."""
    return PLACEHOLDER.sub(
        lambda m: show(values[m.group(1)]) if m.group(1) in values else m.group(0), template
    )


def template(kind: What) -> str:
    """A kind's English as the locale file holds it: the environment variables' names filled in,
    the facts' placeholders left."""
    return fill(kind.value, CONSTANTS)


def english(message: Message | str) -> str:
    """The message in English (a plain text is its own English)."""
    if not isinstance(message, Message):
        return str(message)
    text = fill(template(message.kind), message.facts, english)  # type: ignore[arg-type]
    return text.rstrip(".") if message.clause else text
