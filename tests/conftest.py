"""Shared fixtures: a real sandbox server on a free 127.0.0.1 port, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import submodule
from support.keys import TEST_KEY

sandbox_module = submodule("sandbox")

FAST_GENERATION = (0.05, 0.15)  # seconds: long enough to see a task run, short enough for tests


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Any]]:
    """``sandbox_factory(**config)`` -> a started Sandbox; TEST_KEY with 1000 credits by default."""
    started = []

    def start(faults: Any = None, **config: Any) -> Any:
        config.setdefault("keys", {TEST_KEY: 1000})
        config.setdefault("generation_time", FAST_GENERATION)
        sb = sandbox_module.Sandbox(sandbox_module.SandboxConfig(**config), faults=faults)
        started.append(sb)
        return sb.start()

    yield start
    for sb in started:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., Any]) -> Any:
    return sandbox_factory()


@pytest.fixture
def sandbox_env(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The running sandbox, with APIINONE_API_KEY / APIINONE_BASE_URL pointing at it."""
    monkeypatch.setenv("APIINONE_API_KEY", TEST_KEY)
    monkeypatch.setenv("APIINONE_BASE_URL", sandbox.base_url)
    return sandbox
