"""The pack's translations (``locales/``) in ComfyUI's layout: the English catalog is what the
nodes and the Settings entry declare, and every other language translates all of it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from locale_catalog import ENGLISH_NODE_DEFS, LOCALES_DIR, dumps, node_defs
from support import PACK_DIR, pack

SETTINGS_JS = PACK_DIR / "web" / "js" / "grok_imagine_settings.js"
FILES = ("main.json", "nodeDefs.json", "settings.json")  # those ComfyUI's /i18n route merges
LANGUAGES = sorted(p.name for p in LOCALES_DIR.iterdir() if p.is_dir())
TRANSLATIONS = [language for language in LANGUAGES if language != "en"]
# English words a translation keeps as they are (product names).
KEPT_AS_IS = {("settingsCategories", "Grok Imagine")}
CJK = re.compile(r"[\u4e00-\u9fff]")


def catalog(language: str, name: str) -> dict[str, Any]:
    return json.loads((LOCALES_DIR / language / name).read_text(encoding="utf-8"))


def leaves(tree: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key), value


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


def test_english_settings_words_are_the_settings_entrys_own() -> None:
    english = settings_js_english()
    setting_id = re.search(r'const SETTING_ID = "([^"]+)"', SETTINGS_JS.read_text()).group(1)
    # The frontend looks settings up with the id's dots made underscores.
    assert catalog("en", "settings.json") == {
        setting_id.replace(".", "_"): {
            "name": english["settingName"],
            "tooltip": english["settingTooltip"],
        }
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
        if path in KEPT_AS_IS:
            continue
        assert text != source, f"{language}/{name} {'.'.join(path)} is still English"
        # Prices, limits and placeholders must survive translation (5 credits, 5000, {tail}).
        for fact in re.findall(r"\d+(?:\.\d+)?|\{\w+\}|APIINONE_API_KEY", source):
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
