"""The three nodes' functions, run directly (no ComfyUI) against the sandbox."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import torch
from support import pack, submodule
from support.keys import TEST_KEY

execution = submodule("nodes.execution")
comfy_hooks = submodule("nodes.comfy_hooks")

T2I = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]
UPSCALE = pack.NODE_CLASS_MAPPINGS["GrokImagineUpscale"]
LOAD = pack.NODE_CLASS_MAPPINGS["GrokImagineLoadTask"]
SIGN_IN_TEXT = "Please login first to use this node"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Journal, kept files and key file in this test's folder; fast polling; no key yet."""
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "key" / "api_key"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    monkeypatch.delenv("APIINONE_API_KEY", raising=False)
    monkeypatch.delenv("APIINONE_BASE_URL", raising=False)
    yield tmp_path / "home"
    comfy_hooks.set_test_interrupt(False)
    execution.close_journals()


@pytest.fixture
def grok(home, sandbox_factory, monkeypatch: pytest.MonkeyPatch):
    """``grok(**sandbox_config)`` -> a started sandbox the nodes talk to (2 images per task)."""

    def start(**config):
        config.setdefault("images_per_task", 2)
        sb = sandbox_factory(**config)
        monkeypatch.setenv("APIINONE_API_KEY", TEST_KEY)
        monkeypatch.setenv("APIINONE_BASE_URL", sb.base_url)
        return sb

    return start


def generate(prompt="a red fox in snow", seed=0, **options):
    return asyncio.run(T2I().generate(prompt, seed, **options))


def upscale(task_id):
    return asyncio.run(UPSCALE().upscale(task_id))


def load(task_id):
    return asyncio.run(LOAD().load(task_id))


def assert_images(images, count, height=None, width=None):
    assert isinstance(images, torch.Tensor)
    assert images.dtype == torch.float32
    assert images.ndim == 4 and images.shape[0] == count and images.shape[3] == 3
    if height is not None:
        assert tuple(images.shape[1:3]) == (height, width)
    assert images.is_contiguous()
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert float(images.max()) > 0.0  # not a blank tensor


def assert_one_readable_line(exc: BaseException):
    text = str(exc)
    assert text and "\n" not in text
    assert TEST_KEY not in text
    assert SIGN_IN_TEXT not in text
    assert "Traceback" not in text


# -- text-to-image -------------------------------------------------------------------------------


def test_text_to_image_outputs(grok):
    sb = grok()
    images, task_id, urls = generate()
    assert_images(images, 2, 1024, 1024)
    assert task_id in sb.task_ids()
    assert len(urls.splitlines()) == 2
    assert all(url.startswith("http://127.0.0.1:") for url in urls.splitlines())
    ledger = sb.ledger(TEST_KEY)
    assert (ledger.creates, ledger.credits_charged) == (1, 5)
    assert sb.task_info(task_id).prompt == "a red fox in snow"


def test_provider_default_sends_no_aspect_ratio_and_a_choice_is_sent(grok):
    sb = grok()
    _, default_id, _ = generate(aspect_ratio="provider default")
    assert sb.task_info(default_id).aspect_ratio is None
    images, wide_id, _ = generate(aspect_ratio="16:9")
    assert sb.task_info(wide_id).aspect_ratio == "16:9"
    assert_images(images, 2, 768, 1408)


def test_same_inputs_again_cost_nothing_and_a_new_seed_pays(grok):
    sb = grok()
    first, first_id, first_urls = generate(seed=7)
    again, again_id, again_urls = generate(seed=7)
    assert (again_id, again_urls) == (first_id, first_urls)
    assert torch.equal(first, again)
    assert sb.ledger(TEST_KEY).creates == 1
    _, new_id, _ = generate(seed=8)
    assert new_id != first_id
    assert sb.ledger(TEST_KEY).creates == 2


def test_parallel_tasks_each_pay_and_return_their_images(grok):
    sb = grok()
    images, task_ids, urls = generate(parallel_tasks=3)
    ids = task_ids.splitlines()
    assert len(ids) == len(set(ids)) == 3
    assert_images(images, 6)
    assert len(urls.splitlines()) == 6
    assert sb.ledger(TEST_KEY).creates == 3
    # each task is its own journal identity: asking for 4 reuses 3 and pays for 1
    _, four, _ = generate(parallel_tasks=4)
    assert four.splitlines()[:3] == ids
    assert sb.ledger(TEST_KEY).creates == 4


def test_kept_files_live_under_the_home_folder(grok, home):
    grok()
    _, task_id, _ = generate()
    kept = sorted(p for p in (home / "files" / task_id).iterdir() if not p.name.startswith("."))
    assert [p.suffix for p in kept] == [".jpg", ".jpg"]
    assert (home / "files" / task_id / ".request.json").is_file()  # the task's second record


def test_some_parallel_tasks_failing_still_returns_the_others(grok):
    sb = grok()
    sb.faults.create_errors = [400]  # the next create is refused: one task of two
    images, task_ids, _ = generate(parallel_tasks=2)
    assert len(task_ids.splitlines()) == 1
    assert_images(images, 2)


def test_every_task_failing_is_one_readable_error(grok):
    sb = grok()
    with pytest.raises(RuntimeError) as caught:
        generate("a forbidden picture")
    assert_one_readable_line(caught.value)
    assert "content policy" in str(caught.value)
    assert sb.ledger(TEST_KEY).balance == 1000  # failed tasks are refunded


def test_a_bad_prompt_is_refused_before_anything_is_paid(grok):
    sb = grok()
    for prompt in ("", "x" * 5001):
        with pytest.raises(RuntimeError) as caught:
            generate(prompt)
        assert_one_readable_line(caught.value)
        assert "prompt" in str(caught.value).lower()
    assert sb.create_requests == 0


# -- the key ---------------------------------------------------------------------------------------


def test_missing_key_says_where_to_set_it_and_pays_nothing(home, sandbox, monkeypatch):
    monkeypatch.setenv("APIINONE_BASE_URL", sandbox.base_url)
    with pytest.raises(RuntimeError) as caught:
        generate()
    message = str(caught.value)
    assert_one_readable_line(caught.value)
    assert "APIINONE_API_KEY" in message
    assert "Settings" in message
    assert sandbox.create_requests == 0


def test_key_file_is_read_when_the_environment_has_none(home, sandbox, monkeypatch, tmp_path):
    key_file = tmp_path / "key" / "api_key"
    key_file.parent.mkdir()
    key_file.write_text(TEST_KEY + "\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("APIINONE_BASE_URL", sandbox.base_url)
    images, _, _ = generate()
    assert images.shape[0] == 6  # the plain sandbox fixture's 6 images per task


def test_wrong_key_is_one_line_that_never_asks_for_a_comfy_org_sign_in(grok, monkeypatch):
    grok()
    monkeypatch.setenv("APIINONE_API_KEY", "sk-not-the-right-key-123456")
    with pytest.raises(RuntimeError) as caught:
        generate()
    assert_one_readable_line(caught.value)
    assert "sk-not-the-right-key-123456" not in str(caught.value)
    assert "key" in str(caught.value).lower()


def test_outputs_never_carry_the_key(grok):
    grok()
    _, task_ids, urls = generate()
    assert TEST_KEY not in task_ids and TEST_KEY not in urls


# -- upscale and load ------------------------------------------------------------------------------


def test_text_to_image_wired_into_upscale(grok):
    sb = grok()
    _, task_id, _ = generate()
    images, upscale_id = upscale(task_id)
    assert_images(images, 1, 2048, 2048)
    assert upscale_id != task_id
    info = sb.task_info(upscale_id)
    assert (info.model, info.source_task_id) == ("grok-imagine/upscale", task_id)
    assert sb.ledger(TEST_KEY).credits_charged == 5 + 12
    # queued again: the kept upscale, nothing paid
    again, again_id = upscale(task_id)
    assert again_id == upscale_id and torch.equal(again, images)
    assert sb.ledger(TEST_KEY).creates == 2


def test_upscale_of_several_tasks_upscales_each(grok):
    sb = grok()
    _, task_ids, _ = generate(parallel_tasks=2)
    images, upscale_ids = upscale(task_ids)
    assert_images(images, 2, 2048, 2048)
    sources = [sb.task_info(i).source_task_id for i in upscale_ids.splitlines()]
    assert sources == task_ids.splitlines()


def test_upscale_of_an_unknown_task_is_one_readable_error(grok):
    grok()
    with pytest.raises(RuntimeError) as caught:
        upscale("sbx0000000000000000_grok")
    assert_one_readable_line(caught.value)


def test_load_task_returns_the_paid_images_for_free(grok, home):
    sb = grok()
    images, task_id, urls = generate()
    paid = sb.ledger(TEST_KEY)
    loaded, loaded_id, loaded_urls = load(task_id)
    assert (loaded_id, loaded_urls) == (task_id, urls)
    assert torch.equal(loaded, images)
    # without the kept files (and from another journal) it asks the API, still creating nothing
    shutil.rmtree(home / "files" / task_id)
    execution.close_journals()
    (home / "journal.sqlite").unlink()
    reloaded, _, _ = load(task_id)
    assert torch.equal(reloaded, images)
    assert sb.ledger(TEST_KEY) == paid


def test_load_task_of_an_unknown_id_is_one_readable_error(grok):
    sb = grok()
    with pytest.raises(RuntimeError) as caught:
        load("sbx0000000000000000_grok")
    assert_one_readable_line(caught.value)
    assert sb.create_requests == 0


@pytest.mark.parametrize("bad", ["", "../x", "a/b"])
def test_malformed_task_ids_are_refused_before_any_request(grok, bad):
    sb = grok()
    for run in (upscale, load):
        with pytest.raises(RuntimeError) as caught:
            run(bad)
        assert_one_readable_line(caught.value)
    assert sb.create_requests == 0


# -- concurrency -----------------------------------------------------------------------------------


def test_independent_nodes_wait_concurrently_in_one_event_loop(grok):
    """Two nodes awaited together overlap: both tasks exist before either is finished."""
    sb = grok(generation_time=0.6)

    async def both():
        return await asyncio.gather(
            T2I().generate("first picture", 1), T2I().generate("second picture", 2)
        )

    (_, first_id, _), (_, second_id, _) = asyncio.run(both())
    first, second = sb.task_info(first_id), sb.task_info(second_id)
    assert first.created_at < second.done_at
    assert second.created_at < first.done_at
