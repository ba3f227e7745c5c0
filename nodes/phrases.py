"""What a node tells the frontend, as message keys and parameters: words are made in the browser.

A ``Phrase`` names a message in the pack's locale files (``locales/<lang>/main.json``, under
``grokImagine``) and the values it needs; a parameter may itself be a phrase. Text that has no
message (a provider's failure reason, a file path, an error the pack cannot name) travels as a
plain string and is shown as it is. The frontend (``web/js/grok_imagine_i18n.js``) renders a phrase
in the UI language; nothing on the server builds the node's sentences any more.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

Param = Union[str, int, float, None, "Phrase"]
Part = Union[str, "Phrase"]
"""Something shown: a phrase to translate, or a plain string shown as it is."""


@dataclass(frozen=True)
class Phrase:
    """Message ``key`` (relative to ``grokImagine``) with its ``params``; ``clause``: shown inside
    another sentence, so its final full stop is dropped (``api.messages.Message.clause``)."""

    key: str
    params: Mapping[str, Param] = field(default_factory=dict)
    clause: bool = False

    def to_json(self) -> dict[str, object]:
        made: dict[str, object] = {
            "key": self.key,
            "params": {k: part_json(v) for k, v in self.params.items()},
        }
        if self.clause:
            made["clause"] = True
        return made


def part_json(part: Param) -> object:
    """A part or parameter as JSON: phrases as ``{"key", "params"}``, the rest as they are."""
    return part.to_json() if isinstance(part, Phrase) else part


def phrase(key: str, **params: Param) -> Phrase:
    return Phrase(key, params)
