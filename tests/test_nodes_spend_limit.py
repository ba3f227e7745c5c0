"""The daily credit limit as the nodes apply it: a run over the limit is refused whole."""

from __future__ import annotations

import asyncio

import pytest
from support import pack, submodule
from support.keys import TEST_KEY

execution = submodule("nodes.execution")
comfy_paths = submodule("nodes.comfy_paths")
spend = submodule("journal.spend_limit")

T2I = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]
UPSCALE = pack.NODE_CLASS_MAPPINGS["GrokImagineUpscale"]


@pytest.fixture
def sb(tmp_path, sandbox_factory, monkeypatch):
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "key" / "api_key"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    monkeypatch.delenv(spend.DAILY_LIMIT_ENV, raising=False)
    sandbox = sandbox_factory(images_per_task=1)
    monkeypatch.setenv("APIINONE_API_KEY", TEST_KEY)
    monkeypatch.setenv("APIINONE_BASE_URL", sandbox.base_url)
    yield sandbox
    execution.close_journals()


def creates(sandbox):
    return sandbox.ledger(TEST_KEY).creates


def generate(seed, parallel_tasks):
    return asyncio.run(T2I().generate("a heron at dawn", seed, parallel_tasks=parallel_tasks))


def test_a_node_run_over_the_settings_limit_is_refused_whole(sb):
    spend.write_daily_limit(comfy_paths.settings_file_path(), 12)
    with pytest.raises(RuntimeError) as caught:
        generate(seed=1, parallel_tasks=3)
    assert str(caught.value).startswith(
        "Daily credit limit reached: spent 0 of 12 credits today, this run needs 15 more"
    )
    assert str(caught.value).endswith(
        "so nothing was sent. To go on, raise it in Settings \u203a Grok Imagine \u203a Daily "
        "credit limit, or wait until tomorrow."
    )
    assert creates(sb) == 0

    _, task_ids, _ = generate(seed=1, parallel_tasks=2)
    assert creates(sb) == 2
    with pytest.raises(RuntimeError, match="spent 10 of 12 credits today, this run needs 12"):
        asyncio.run(UPSCALE().upscale(task_ids.splitlines()[0]))
    assert creates(sb) == 2
    generate(seed=1, parallel_tasks=2)  # the same run again is free: never refused
    assert creates(sb) == 2


def test_the_environment_limit_wins_over_the_settings_entry(sb, monkeypatch):
    spend.write_daily_limit(comfy_paths.settings_file_path(), 100)
    monkeypatch.setenv(spend.DAILY_LIMIT_ENV, "4")
    with pytest.raises(RuntimeError, match=f"raise or unset {spend.DAILY_LIMIT_ENV}"):
        generate(seed=2, parallel_tasks=1)
    assert creates(sb) == 0
