"""The English catalogs made from the code, so what translators work from is exactly what the
pack says (``tests/test_locales.py`` fails when a committed file drifts from it):

* ``locales/en/nodeDefs.json`` from the node classes (names, descriptions, tooltips);
* in ``locales/en/main.json``, the messages of what happened (``what``: ``api/what.py``), of
  what to do in ComfyUI (``advice``: ``api/advice.py``'s node words, keyed as
  ``nodes/error_phrases.py`` looks them up) and the Settings entries they name (``entry``); the
  rest of that file (the status, the panel, the Settings entries' own words) is written by hand.

After changing any of those: ``python tests/locale_catalog.py`` rewrites the English files; then
update the other languages' entries it changed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

PACK_DIR = Path(__file__).resolve().parents[1]
LOCALES_DIR = PACK_DIR / "locales"
ENGLISH_NODE_DEFS = LOCALES_DIR / "en" / "nodeDefs.json"
ENGLISH_MAIN = LOCALES_DIR / "en" / "main.json"
GENERATED = ("entry", "what", "advice")
"""The parts of ``main.json``'s ``grokImagine`` made from the code."""


def node_defs(node_classes: dict[str, type]) -> dict[str, Any]:
    """The frontend's ``nodeDefs`` shape: display name, description, inputs and outputs."""
    catalog: dict[str, Any] = {}
    for node_id, node in sorted(node_classes.items()):
        spec = node.INPUT_TYPES()
        inputs = {**spec.get("required", {}), **spec.get("optional", {})}
        catalog[node_id] = {
            "display_name": node.DISPLAY_NAME,
            "description": node.DESCRIPTION,
            "inputs": {
                name: {"name": name, "tooltip": options[1]["tooltip"]}
                for name, options in inputs.items()
            },
            "outputs": {
                str(index): {"name": name, "tooltip": tooltip}
                for index, (name, tooltip) in enumerate(
                    zip(node.RETURN_NAMES, node.OUTPUT_TOOLTIPS, strict=True)
                )
            },
        }
    return catalog


def message_words(sub: Callable[[str], ModuleType]) -> dict[str, dict[str, str]]:
    """The generated parts of ``grokImagine``: each message's English, as the code words it."""
    advice = sub("api.advice")
    messages = sub("api.messages")
    phrases = sub("nodes.error_phrases")
    advice_words = {}
    for kind in advice.Advice:
        for case, words in advice.advice_cases(kind, advice.Surface.NODE):
            if words:
                key = phrases.ADVICE_KEYS[(kind, case)]
                advice_words[key.split(".", 1)[1]] = messages.fill(words, messages.CONSTANTS)
    return {
        "entry": {"key": advice.SETTINGS_ENTRY, "limit": advice.DAILY_LIMIT_ENTRY},
        "what": {
            phrases.what_key(kind).split(".", 1)[1]: messages.template(kind)
            for kind in sub("api.what").What
        },
        "advice": advice_words,
    }


def main_catalog(current: dict[str, Any], sub: Callable[[str], ModuleType]) -> dict[str, Any]:
    """``current`` (``main.json``) with its generated parts made anew, in their places."""
    made = message_words(sub)
    words = {name: made.get(name, part) for name, part in current["grokImagine"].items()}
    words.update({name: part for name, part in made.items() if name not in words})
    return {**current, "grokImagine": words}


def dumps(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, ensure_ascii=False, indent=2) + "\n"


def main() -> None:
    sys.path.insert(0, str(PACK_DIR / "tests"))
    from support import pack, submodule

    ENGLISH_NODE_DEFS.write_text(dumps(node_defs(pack.NODE_CLASS_MAPPINGS)), encoding="utf-8")
    print(f"wrote {ENGLISH_NODE_DEFS.relative_to(PACK_DIR)}")
    current = json.loads(ENGLISH_MAIN.read_text(encoding="utf-8"))
    ENGLISH_MAIN.write_text(dumps(main_catalog(current, submodule)), encoding="utf-8")
    print(f"wrote {ENGLISH_MAIN.relative_to(PACK_DIR)}")


if __name__ == "__main__":
    main()
