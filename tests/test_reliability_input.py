"""The fault matrix, local input: what the user typed or saved is wrong.

Bad input must cost nothing and touch nothing: no request, no journal row, no folder, and a
message that names the input and the fix. A key saved with stray characters is trimmed (and the
log says so); a key file that cannot be read is told apart from a missing one.
"""

from __future__ import annotations

import logging
import os

import pytest
from support import submodule
from support.api_names import public_api
from support.reliability import (
    KEY,
    POLL,
    PROMPT,
    make_rig,
    matrix_row,
    no_key_leaks,  # noqa: F401 - autouse: DEBUG logs on, no key in any record or file
)

api = public_api()
errors = submodule("api.errors")

AREA = "Bad local input"

BAD_PROMPTS = {
    "empty": ("", "empty"),
    "whitespace only": (" \n\t  ", "empty"),
    "5001 characters": ("x" * 5001, "5001 characters"),
    "NUL inside": ("a lighthouse\x00 at dusk", "U+0000"),
}


@matrix_row(
    AREA, "prompt empty / whitespace only / 5001 characters / containing NUL",
    "`InvalidRequestError` (field `prompt`) at once: \"The prompt is empty: describe the image "
    "you want.\" / \"The prompt is 5001 characters long; Grok Imagine accepts at most 5000. "
    "Shorten it by 1 characters.\" / \"... an invisible control character (U+0000) at position "
    "13 ...\"",
    "nothing: no request, no journal row, no API client even made; 0 creates",
)  # fmt: skip
@pytest.mark.parametrize("case", BAD_PROMPTS, ids=list(BAD_PROMPTS))
def test_bad_prompts_cost_nothing_and_touch_nothing(sandbox, tmp_path, case):
    prompt, said = BAD_PROMPTS[case]
    rig = make_rig(tmp_path, sandbox)
    caught = rig.expect(errors.InvalidRequestError, lambda: rig.runner.text_to_image(prompt))
    assert caught.field == "prompt" and not caught.from_server and said in str(caught)
    assert rig.factory.calls == 0 and rig.runner.journal.recent() == []
    assert sandbox.create_requests == 0 and rig.ledger() == (0, 0) and rig.kept() == []


@matrix_row(
    AREA, "prompt of exactly 5000 characters (the limit itself)",
    "nothing: it is sent and the images arrive",
    "the task's images; 1 create, 5 credits",
)  # fmt: skip
def test_prompt_at_the_limit_is_accepted(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    result = rig.runner.text_to_image("y" * 5000)
    assert len(result.files) == 6 and rig.ledger() == (1, 5)


BAD_TASK_IDS = {
    "slash": ("sbx123/../../etc", "'/'"),
    "dot dot": ("..", "'..'"),
    "space": ("sbx123 _grok", "space"),
    "URL": ("https://apiin.one/api/v1/tasks/sbx123_grok?x=1", "':'"),
    "10 kB": ("a" * 10_240, "10240 characters"),
}


@matrix_row(
    AREA, "task id with `/`, `..`, a space, URL syntax, or 10 kB long (Load Task and Upscale)",
    "`InvalidRequestError` (field `task_id`) at once: \"The task id contains the character '/'; "
    "a task id is a short token of letters, digits, '-', '_' and '.'. Paste only the id, not a "
    "URL or a path.\" / \"The task id is 10240 characters long ...\"",
    "nothing: no request, no journal row, no folder under the kept-files root; 0 creates",
)  # fmt: skip
@pytest.mark.parametrize("case", BAD_TASK_IDS, ids=list(BAD_TASK_IDS))
def test_bad_task_ids_cost_nothing_and_touch_nothing(sandbox, tmp_path, case):
    task_id, said = BAD_TASK_IDS[case]
    rig = make_rig(tmp_path, sandbox)
    for call in (lambda: rig.runner.load(task_id), lambda: rig.runner.upscale(task_id)):
        caught = rig.expect(errors.InvalidRequestError, call)
        assert caught.field == "task_id" and not caught.from_server and said in str(caught)
        assert len(str(caught)) < 400  # a 10 kB id is not echoed back
    assert rig.factory.calls == 0 and rig.runner.journal.recent() == []
    assert sandbox.create_requests == 0 and rig.ledger() == (0, 0)
    assert not rig.files_root.exists() or not any(rig.files_root.iterdir())
    assert not (tmp_path.parent / "etc").exists()


# -- the key -------------------------------------------------------------------------------------


def key_file_rig(tmp_path, sb, key_file):
    """A rig whose client reads the key the way the nodes do: from a key file, at run time."""
    rig = make_rig(tmp_path, sb)

    def from_key_file():
        rig.factory.calls += 1
        settings = api.load_settings(key_file, environ={"APIINONE_BASE_URL": sb.base_url})
        return api.GrokClient(settings, poll=POLL)

    rig.runner.client_factory = from_key_file
    return rig


def _folder(path):
    path.mkdir()


def _binary(path):
    path.write_bytes(b"\xff\xfe\x00\x81" * 8)


def _through_a_file(path):
    path.write_text("not a folder")
    return path / "api_key"


def _no_permission(path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root reads any file whatever its mode")
    path.write_text(KEY)
    path.chmod(0)


UNREADABLE = {
    "a folder": (_folder, "is a folder"),
    "binary bytes": (_binary, "is not text"),
    "a path through a file": (_through_a_file, "could not be read"),
    "mode 000": (_no_permission, "could not be read"),
}


@matrix_row(
    AREA, "unreadable key file (a folder, binary bytes, a path through a file, mode 000)",
    "`MissingKeyError` naming the file and the fix: \"The API key file <path> could not be read "
    "(Not a directory): fix its permissions or save the key again (or set APIINONE_API_KEY).\"",
    "journal row `rejected`, 0 credits; no request sent; 0 creates",
)  # fmt: skip
@pytest.mark.parametrize("case", UNREADABLE, ids=list(UNREADABLE))
def test_unreadable_key_file_is_a_clear_error_and_costs_nothing(sandbox, tmp_path, case):
    make_bad, said = UNREADABLE[case]
    key_file = tmp_path / "api_key"
    key_file = make_bad(key_file) or key_file
    rig = key_file_rig(tmp_path, sandbox, key_file)
    try:
        caught = rig.expect(errors.MissingKeyError, lambda: rig.runner.text_to_image(PROMPT))
    finally:
        if key_file.is_file():
            key_file.chmod(0o600)
            key_file.unlink()  # the key file is the one place the key belongs; not a leak
    assert said in str(caught) and str(key_file) in str(caught)
    assert "APIINONE_API_KEY" in str(caught)
    assert [(e.state, e.credits) for e in rig.history()] == [("rejected", 0)]
    assert sandbox.create_requests == 0 and rig.ledger() == (0, 0)


STRAY = {
    "quotes": f'"{KEY}"\n',
    "quotes and spaces": f"  '{KEY}'  \n",
    "Bearer prefix": f"Bearer {KEY}\n",
    "env-file line": f"APIINONE_API_KEY={KEY}\n",
}


@matrix_row(
    AREA, "key saved with stray quotes, a `Bearer ` prefix or an `APIINONE_API_KEY=` prefix",
    "nothing blocks: the key is trimmed and a WARNING says so (\"the key file <path>: removed "
    "stray whitespace, quotes or a prefix around the API key\"), without the key",
    "the task's images; 1 create, 5 credits",
)  # fmt: skip
@pytest.mark.parametrize("case", STRAY, ids=list(STRAY))
def test_key_with_stray_quotes_or_prefix_is_trimmed_and_said_so(sandbox, tmp_path, caplog, case):
    key_file = tmp_path / "key" / "api_key"
    key_file.parent.mkdir()
    key_file.write_text(STRAY[case])
    rig = key_file_rig(tmp_path, sandbox, key_file)
    result = rig.runner.text_to_image(PROMPT)
    assert len(result.files) == 6 and rig.ledger() == (1, 5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                and r.name.startswith("grok_imagine")]  # fmt: skip
    assert any("removed stray" in w and str(key_file) in w for w in warnings), warnings
    key_file.unlink()  # the key file itself is the one place the key may be; not a leak


@matrix_row(
    AREA, "key with stray spaces around it (`APIINONE_API_KEY=\"  sk-...  \"`, or spaces in the "
    "key file)",
    "nothing blocks: the key is trimmed and a WARNING says so (\"... removed stray whitespace, "
    "quotes or a prefix around the API key\"), without the key",
    "the task's images; 1 create, 5 credits",
)  # fmt: skip
@pytest.mark.parametrize("where", ["environment", "key file"])
def test_key_with_stray_spaces_is_trimmed_and_said_so(sandbox, tmp_path, caplog, where):
    raw = f"   {KEY}   "
    if where == "environment":
        rig = make_rig(tmp_path, sandbox)

        def from_env():
            rig.factory.calls += 1
            environ = {"APIINONE_API_KEY": raw, "APIINONE_BASE_URL": sandbox.base_url}
            return api.GrokClient(api.load_settings(environ=environ), poll=POLL)

        rig.runner.client_factory = from_env
    else:
        key_file = tmp_path / "key" / "api_key"
        key_file.parent.mkdir()
        key_file.write_text(raw + "\n")
        rig = key_file_rig(tmp_path, sandbox, key_file)
    try:
        result = rig.runner.text_to_image(PROMPT)
        assert len(result.files) == 6 and rig.ledger() == (1, 5)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                    and r.name.startswith("grok_imagine")]  # fmt: skip
        assert any("whitespace" in w for w in warnings), warnings
    finally:
        if where == "key file":
            key_file.unlink()


@matrix_row(
    AREA, "key file ending in one line break (as every editor saves it)",
    "nothing, and no warning: a final line break is not a stray character",
    "the task's images; 1 create, 5 credits",
)  # fmt: skip
def test_key_file_with_a_final_line_break_is_read_quietly(sandbox, tmp_path, caplog):
    key_file = tmp_path / "key" / "api_key"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    rig = key_file_rig(tmp_path, sandbox, key_file)
    result = rig.runner.text_to_image(PROMPT)
    assert len(result.files) == 6 and rig.ledger() == (1, 5)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and r.name.startswith("grok_imagine")]  # fmt: skip
    key_file.unlink()
