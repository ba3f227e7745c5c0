"""The pack's translations (``locales/``) in ComfyUI's layout: the English catalog is what the
nodes and the Settings entry declare, and every other language translates all of it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from locale_catalog import (
    ENGLISH_MAIN,
    ENGLISH_NODE_DEFS,
    GENERATED,
    LOCALES_DIR,
    dumps,
    main_catalog,
    node_defs,
)
from support import PACK_DIR, pack, submodule

WEB_JS = PACK_DIR / "web" / "js"
SETTINGS_JS = WEB_JS / "grok_imagine_settings.js"
PANEL_JS = WEB_JS / "grok_imagine_panel.js"
FILES = ("main.json", "nodeDefs.json", "settings.json")  # those ComfyUI's /i18n route merges
LANGUAGES = sorted(p.name for p in LOCALES_DIR.iterdir() if p.is_dir())
TRANSLATIONS = [language for language in LANGUAGES if language != "en"]
# English words a translation keeps as they are (product names).
KEPT_AS_IS = {("settingsCategories", "Grok Imagine"), ("grokImagine", "panel", "tabTitle")}
CJK = re.compile(r"[\u4e00-\u9fff]")
KEPT_FACTS = re.compile(r"\d+(?:\.\d+)?|\{\w+\}|[A-Z][A-Z0-9]*_[A-Z0-9_]+|`[^`]+`")
"""What a translation keeps as it is: numbers (prices, limits), placeholders, environment
variables' names (APIINONE_API_KEY) and commands (`grok-imagine tasks`)."""


def catalog(language: str, name: str) -> dict[str, Any]:
    return json.loads((LOCALES_DIR / language / name).read_text(encoding="utf-8"))


def leaves(tree: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key), value


def words(template: str) -> str:
    """A message's own words: its text without placeholders, separators and punctuation (a
    message that is only a layout, such as "{title} · {seconds} s" less its unit, has none)."""
    return re.sub(r"[^A-Za-z]+", "", re.sub(r"\{\w+\}", "", template))


def settings_js_english() -> dict[str, str]:
    found = re.search(
        r"/\* english:begin \*/\s*const ENGLISH = (\{.*?\});\s*/\* english:end \*/",
        SETTINGS_JS.read_text(encoding="utf-8"),
        re.S,
    )
    assert found, "the ENGLISH table of grok_imagine_settings.js is not between its markers"
    return json.loads(found.group(1))


def test_english_and_chinese_at_least() -> None:
    assert {"en", "zh"} <= set(LANGUAGES)
    for language in LANGUAGES:
        assert sorted(p.name for p in (LOCALES_DIR / language).iterdir()) == sorted(FILES)


def test_english_node_catalog_is_what_the_nodes_declare() -> None:
    expected = dumps(node_defs(pack.NODE_CLASS_MAPPINGS))
    assert ENGLISH_NODE_DEFS.read_text(encoding="utf-8") == expected, (
        "locales/en/nodeDefs.json is out of date: run `python tests/locale_catalog.py`, then "
        "update the other languages"
    )


def test_english_messages_are_what_the_code_says() -> None:
    """The messages of what happened and what to do are generated from ``api/what.py`` and
    ``api/advice.py``: a change there without ``python tests/locale_catalog.py`` fails here."""
    current = json.loads(ENGLISH_MAIN.read_text(encoding="utf-8"))
    assert ENGLISH_MAIN.read_text(encoding="utf-8") == dumps(main_catalog(current, submodule)), (
        "locales/en/main.json is out of date: run `python tests/locale_catalog.py`, then update "
        "the other languages"
    )
    assert set(GENERATED) <= set(current["grokImagine"])


def test_every_advice_case_has_its_message() -> None:
    advice = submodule("api.advice")
    error_phrases = submodule("nodes.error_phrases")
    cases = {
        (kind, case)
        for kind in advice.Advice
        if kind is not advice.Advice.NONE
        for case, _ in advice.advice_cases(kind, advice.Surface.NODE)
    }
    assert cases == set(error_phrases.ADVICE_KEYS)


def panel_js_setting() -> dict[str, str]:
    """The daily limit entry's id, name and tooltip as grok_imagine_panel.js registers it."""
    source = PANEL_JS.read_text(encoding="utf-8")
    found = re.search(
        r'id: "([^"]+)",.*?name: "([^"]+)",\s*tooltip:\s*((?:"[^"]*"\s*\+?\s*|`[^`]*`\s*)+),',
        source,
        re.S,
    )
    assert found, "the limit entry's declaration in grok_imagine_panel.js was not found"
    env = re.search(r'const ENV_VAR = "([^"]+)"', source).group(1)
    pieces = re.findall(r'"([^"]*)"|`([^`]*)`', found.group(3))
    tooltip = "".join(a or b for a, b in pieces).replace("${ENV_VAR}", env)
    return {"id": found.group(1), "name": found.group(2), "tooltip": tooltip}


def test_english_settings_words_are_the_settings_entrys_own() -> None:
    english = settings_js_english()
    setting_id = re.search(r'const SETTING_ID = "([^"]+)"', SETTINGS_JS.read_text()).group(1)
    limit = panel_js_setting()
    # The frontend looks settings up with the id's dots made underscores.
    assert catalog("en", "settings.json") == {
        setting_id.replace(".", "_"): {
            "name": english["settingName"],
            "tooltip": english["settingTooltip"],
        },
        limit["id"].replace(".", "_"): {"name": limit["name"], "tooltip": limit["tooltip"]},
    }
    entry = {k: v for k, v in english.items() if not k.startswith("setting")}
    assert catalog("en", "main.json")["grokImagine"]["keyEntry"] == entry


@pytest.mark.parametrize("language", TRANSLATIONS)
@pytest.mark.parametrize("name", FILES)
def test_a_translation_translates_everything_and_keeps_the_facts(language: str, name: str) -> None:
    english = dict(leaves(catalog("en", name)))
    translated = dict(leaves(catalog(language, name)))
    assert set(translated) == set(english), f"{language}/{name}: keys differ from en/{name}"
    for path, text in translated.items():
        source = english[path]
        assert isinstance(text, str) and text.strip(), (language, name, path)
        if path in KEPT_AS_IS or not words(source):
            continue
        assert text != source, f"{language}/{name} {'.'.join(path)} is still English"
        # Prices, limits and placeholders must survive translation (5 credits, 5000, {tail}).
        for fact in KEPT_FACTS.findall(source):
            assert fact in text, f"{language}/{name} {'.'.join(path)} lost {fact!r}"
        if language.startswith("zh"):
            assert CJK.search(text), f"{language}/{name} {'.'.join(path)} has no Chinese"


def test_node_names_stay_recognisable_in_every_language() -> None:
    for language in LANGUAGES:
        for node_id, entry in catalog(language, "nodeDefs.json").items():
            assert node_id in pack.NODE_CLASS_MAPPINGS
            assert entry["display_name"].startswith("API in One · Grok"), (language, node_id)


def test_the_registry_archive_and_pip_ship_the_locales() -> None:
    pyproject = (PACK_DIR / "pyproject.toml").read_text()
    assert '"locales/*/*.json"' in pyproject
    assert all(Path(LOCALES_DIR / language).is_dir() for language in LANGUAGES)


def english_keys() -> set[str]:
    tree = catalog("en", "main.json")["grokImagine"]
    keys = {".".join(path) for path, _ in leaves(tree)}
    return keys | {re.sub(r"_(one|other)$", "", key) for key in keys}


def keys_used() -> set[str]:
    """Every message key the pack's code names (Python phrases, JS say(), the advice's keys, the
    keys of what happened, which are the kinds' names)."""
    used = set()
    for path in (*(PACK_DIR / "nodes").glob("*.py"), *WEB_JS.glob("*.js")):
        text = path.read_text(encoding="utf-8")
        prefix = "keyEntry." if path == SETTINGS_JS else ""  # the key entry's own say()
        used |= {prefix + key for key in re.findall(r'\b(?:phrase|say)\(\s*"([\w.]+)"', text)}
    error_phrases = submodule("nodes.error_phrases")
    used |= set(error_phrases.ADVICE_KEYS.values())
    used |= {error_phrases.what_key(kind) for kind in submodule("api.what").What}
    return used


def test_every_message_the_code_names_is_in_english() -> None:
    used = keys_used()
    assert {"status.cost.free", "advice.raiseLimit", "panel.fetch", "badge.free"} <= used
    assert used - english_keys() == set()


def test_every_state_and_outcome_and_unit_has_its_message() -> None:
    from support import submodule

    event_phrases = submodule("nodes.event_phrases")
    keys = english_keys()
    for name in event_phrases._STATES.values():
        assert f"status.state.{name}" in keys
    for name in event_phrases._OUTCOMES.values():
        assert f"status.outcome.{name}" in keys
    for node in pack.NODE_CLASS_MAPPINGS.values():
        if node.COST.per:
            assert f"badge.per.{node.COST.per}" in keys
    states = ("reserved", "creating", "uncertain", "rejected", "queued", "running", "succeeded")
    for state in (*states, "failed"):
        assert f"panel.state.{state}" in keys
    state_mod = submodule("journal.model").State
    journal_states = {v for k, v in vars(state_mod).items() if k.isupper() and isinstance(v, str)}
    assert "waiting" in journal_states
    for state in journal_states:  # every state a row can be in, the one added with pacing too
        assert f"panel.state.{state}" in keys
