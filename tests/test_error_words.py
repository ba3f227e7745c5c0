"""What happened, as the pack words it: typed at every raise site, English made once.

Every error of ``support.error_corpus`` (thousands, made by the raise sites with varied facts)
carries its "what happened" as a message, and the node's structured status for it reads in
English exactly as the error's own line, and in Chinese without a word of the pack's English.
"""

from __future__ import annotations

import pytest
from support import submodule
from support.error_corpus import corpus
from support.status_text import catalog, english_words, render, without_facts

errors = submodule("api.errors")
messages = submodule("api.messages")
what = submodule("api.what")
error_phrases = submodule("nodes.error_phrases")
phrases = submodule("nodes.phrases")

NODE = errors.Surface.NODE
GIVEN_AS_TEXT = {"TaskFailedError own text", "ModerationError own text"}
"""The corpus's errors made with a text of their own (a caller's words, shown as they are)."""
MADE = corpus(submodule)
OURS = [(name, exc) for name, exc in MADE if isinstance(exc, errors.GrokError)]


def test_the_corpus_is_large_and_all_the_packs_words_are_typed() -> None:
    assert len(OURS) > 4000
    untyped = sorted({name for name, exc in OURS if exc.happened is None} - GIVEN_AS_TEXT)
    assert untyped == []


@pytest.mark.parametrize("kind", list(what.What), ids=lambda k: k.name)
def test_every_kind_is_made_somewhere(kind) -> None:
    """Each kind is used: in a raise site's message (the corpus), or named in the pack's code."""
    used = set()

    def walk(message) -> None:
        used.add(message.kind)
        for value in message.facts.values():
            if isinstance(value, messages.Message):
                walk(value)

    for _, exc in OURS:
        if exc.happened is not None:
            walk(exc.happened)
    if kind not in used:
        from support import PACK_DIR

        code = [p.read_text() for p in PACK_DIR.glob("[anj]*/**/*.py")]
        assert any(f"What.{kind.name}" in text for text in code), kind


def test_on_the_node_every_error_reads_as_its_own_line() -> None:
    """English from the locale file equals the error's own English, for every error."""
    for name, exc in MADE:
        line = phrases.part_json(error_phrases.error_phrase(exc))
        assert render(line) == errors.exception_line(exc, NODE), name
        told = phrases.part_json(error_phrases.error_what(exc))
        assert render(told) == errors.what_happened(exc), name


def test_in_chinese_no_error_says_a_word_of_the_packs_english() -> None:
    zh = catalog("zh")
    for name, exc in OURS:
        if name in GIVEN_AS_TEXT:
            continue
        line = render(without_facts(phrases.part_json(error_phrases.error_phrase(exc))), zh)
        assert english_words(line) == [], (name, line)


def test_a_clause_drops_its_full_stop_in_every_language() -> None:
    inner = errors.ServerError(messages.said(what.What.MAINTENANCE, said=""))
    exc = errors.TaskTimeoutError("tsk_3_grok", 60.0, last_error=errors.happened(inner))
    reason = exc.happened.facts["reason"]
    assert isinstance(reason, messages.Message) and reason.clause
    made = phrases.part_json(error_phrases.error_what(exc))
    assert render(made) == exc.what
    assert "(HTTP 455). The task" in exc.what and ".." not in exc.what
    chinese = render(made, catalog("zh"))
    assert "HTTP 455\uff09\u3002" in chinese and "\u3002\u3002" not in chinese


def test_facts_are_text_or_whole_numbers_or_messages() -> None:
    with pytest.raises(TypeError):
        messages.said(what.What.WAITED, seconds=1.5)
    with pytest.raises(TypeError):
        messages.said(what.What.TASK, task_id=None)


def test_the_placeholder_rule_is_the_browsers() -> None:
    """One pass, unknown names kept, a fact's own braces never read as placeholders."""
    made = messages.said(what.What.SAID, said="{said} {x}")
    assert messages.english(made) == ": {said} {x}"
    assert messages.fill("{a}{b}", {"a": "{b}"}) == "{b}{b}"
