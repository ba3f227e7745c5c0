"""Shared fixtures: a real sandbox server on a free 127.0.0.1 port, stopped after each test."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import submodule
from support.keys import TEST_KEY

sandbox_module = submodule("sandbox")

FAST_GENERATION = (0.05, 0.15)  # seconds: long enough to see a task run, short enough for tests


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the tests' subprocesses as it would from a terminal.

    A shell starts a background job (``pytest &``) with SIGINT ignored, and every child inherits
    that: the Ctrl-C tests then signal processes that never notice (a CLI that exits 2 when its
    standard input closes, a sandbox that never stops). Python's own handler, taken back here,
    is reset to the default in each child, which then sees Ctrl-C as a user's would.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


# -- PostgreSQL for the shared-journal tests (tools/pg_cluster.py) --------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server URL for the session: the one given by env, else a throwaway cluster."""
    import os

    import pg_cluster as pg

    reason = pg.why_not()
    if reason:
        pytest.skip(f"no PostgreSQL server for the shared-journal tests: {reason}")
    given = os.environ.get(pg.PG_URL_ENV)
    if given:
        yield given
        return
    cluster = _started_cluster()
    yield cluster.server_url
    cluster.destroy()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    import pg_cluster as pg

    url = pg.new_database(pg_server)
    yield url
    pg.drop_database(pg_server, url)


@pytest.fixture
def pg_own_cluster() -> Iterator[Any]:
    """A server of the test's own, which it may stop and start again."""
    import pg_cluster as pg

    reason = pg.why_not() or (None if pg.binaries() else "no PostgreSQL server binaries")
    if reason:
        pytest.skip(f"no PostgreSQL server to stop and restart: {reason}")
    cluster = _started_cluster()
    yield cluster
    cluster.destroy()


def _started_cluster() -> Any:
    import subprocess

    import pg_cluster as pg

    cluster = pg.Cluster()
    try:
        return cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.destroy()
        pytest.skip(f"a throwaway PostgreSQL server could not be started: {exc}")
