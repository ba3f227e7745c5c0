"""Local input checks and the error classes' promises (one line, no key, no sign-in text)."""

from __future__ import annotations

import pytest
from support import submodule
from support.keys import TEST_KEY

errors = submodule("api.errors")
validation = submodule("api.validation")

# -- prompts ------------------------------------------------------------------------------------


def test_prompt_is_stripped_and_kept_otherwise():
    assert validation.validate_prompt("  a red fox\nin snow\t ") == "a red fox\nin snow"
    assert validation.validate_prompt("émoji 🦊 ok") == "émoji 🦊 ok"


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t "])
def test_empty_prompt_is_refused(prompt):
    with pytest.raises(errors.InvalidRequestError) as caught:
        validation.validate_prompt(prompt)
    assert caught.value.field == "prompt"
    assert "empty" in str(caught.value)
    assert caught.value.from_server is False


def test_prompt_length_limit_counts_characters():
    assert validation.validate_prompt("x" * validation.MAX_PROMPT_CHARS)
    with pytest.raises(errors.InvalidRequestError) as caught:
        validation.validate_prompt("x" * (validation.MAX_PROMPT_CHARS + 7))
    message = str(caught.value)
    assert "5007" in message and "5000" in message and "by 7" in message


@pytest.mark.parametrize("bad", ["a\x00b", "esc \x1b[31m red", "bell\x07", "del\x7f", "c1\x85x"])
def test_control_characters_in_prompt_are_refused(bad):
    with pytest.raises(errors.InvalidRequestError) as caught:
        validation.validate_prompt(bad)
    assert caught.value.field == "prompt"
    assert "control character" in str(caught.value)


@pytest.mark.parametrize("value", [None, 42, b"bytes", ["list"]])
def test_prompt_must_be_text(value):
    with pytest.raises(errors.InvalidRequestError):
        validation.validate_prompt(value)


# -- task ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_id", ["n31abc_grok", "sbx0123456789abcdef_grok", "a" * 128, "abc.def-1", "  padded  "]
)
def test_good_task_ids(task_id):
    assert validation.validate_task_id(task_id) == task_id.strip()


@pytest.mark.parametrize(
    "task_id",
    [
        "",
        "  ",
        "a" * 129,
        "../etc/passwd",
        "abc/def",
        "a..b",
        ".hidden",
        "abc def",
        "abc\tdef",
        "abc\x00",
        "abc?x=1",
        "abc#frag",
        "abc%2F",
        "user:pw",
        "a@b",
        "https://apiin.one/api/v1/tasks/abc",
        "tâche",
        "back\\slash",
    ],
)
def test_bad_task_ids(task_id):
    with pytest.raises(errors.InvalidRequestError) as caught:
        validation.validate_task_id(task_id)
    assert caught.value.field == "task_id"
    assert "\n" not in str(caught.value)


def test_aspect_ratio():
    for ratio in validation.ASPECT_RATIOS:
        assert validation.validate_aspect_ratio(ratio) == ratio
    with pytest.raises(errors.InvalidRequestError) as caught:
        validation.validate_aspect_ratio("4:3")
    assert caught.value.field == "aspect_ratio"
    assert "1:1" in str(caught.value)


# -- the error classes' promises ----------------------------------------------------------------


def test_every_message_is_one_line_and_never_the_comfy_sign_in_text():
    err = errors.AuthError("Unauthorized: Please login first to use this node.\nsecond line")
    text = str(err)
    assert "\n" not in text
    assert "Please login first to use this node" not in text


def test_remembered_keys_are_masked_from_any_message():
    errors.remember_secret(TEST_KEY)
    for cls in (errors.GrokError, errors.NetworkError, errors.BadResponseError):
        err = cls(f"server echoed Bearer {TEST_KEY} back")
        assert TEST_KEY not in str(err)
        assert TEST_KEY not in repr(err)
        assert TEST_KEY not in str(err.args)
        assert errors.REDACTED in str(err)
    failed = errors.TaskFailedError("t1", f"bad key {TEST_KEY}")
    assert TEST_KEY not in str(failed) and TEST_KEY not in (failed.reason or "")


def test_error_attributes():
    assert errors.RateLimitedError("slow down", retry_after=7).retry_after == 7
    assert errors.InvalidRequestError("x", field="prompt").field == "prompt"
    assert errors.ServerError("x", status=503).retryable
    assert not errors.ServerError("x", status=505).retryable
    timeout = errors.TaskTimeoutError("abc", 600)
    assert timeout.task_id == "abc" and "abc" in str(timeout) and "Load Task" in str(timeout)
    assert "keeps running" in str(timeout)
    assert errors.TaskTimeoutError(None).task_id is None
    assert errors.CancelledError("abc").task_id == "abc"
    moderation = errors.ModerationError("abc", "content policy")
    assert isinstance(moderation, errors.TaskFailedError)
    assert moderation.task_id == "abc" and moderation.reason == "content policy"
    assert "not charged" in str(moderation)
    assert issubclass(errors.UncertainCreateError, errors.NetworkError)
    for cls in (errors.NotAnImageError, errors.TooLargeError, errors.ResultExpiredError):
        assert issubclass(cls, errors.DownloadError)
        assert str(cls())  # a default message exists


LIGHT_IMPORT_CHECK = """
import importlib, importlib.util, sys
api_dir = sys.argv[1]
spec = importlib.util.spec_from_file_location(
    "grok_api_alone", api_dir + "/__init__.py", submodule_search_locations=[api_dir]
)
module = importlib.util.module_from_spec(spec)
sys.modules["grok_api_alone"] = module
spec.loader.exec_module(module)
for name in ("validation", "errors", "models", "config", "task", "task_reader", "polling"):
    importlib.import_module("grok_api_alone." + name)
sys.modules["grok_api_alone.polling"].PollSchedule().scaled(0.5)
heavy = [m for m in ("requests", "urllib3", "PIL", "numpy", "torch") if m in sys.modules]
print(",".join(heavy))
"""


def test_light_modules_do_not_pull_in_heavy_libraries():
    """ComfyUI imports the node declarations at start-up: those parts of api/ must stay light."""
    import subprocess
    import sys

    from support import PACK_DIR

    out = subprocess.run(
        [sys.executable, "-c", LIGHT_IMPORT_CHECK, str(PACK_DIR / "api")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
