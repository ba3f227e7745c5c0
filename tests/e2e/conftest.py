"""Fixtures for the end-to-end suite: a sandbox on loopback and a real ComfyUI pointed at it.

Everything here is skipped, with the reason, unless ``COMFYUI_DIR`` names a ComfyUI checkout whose
requirements are installed (in ``COMFYUI_PYTHON``, a venv in or next to the checkout, or the
Python running the tests). Screenshots and timings go to ``E2E_ARTIFACTS_DIR``, default
``test-artifacts/e2e`` in the repository (ignored by git).

Browser tests: ``chromium`` (one Debian Chromium for the session, through Playwright),
``browser_comfyui`` (one ComfyUI the browser tests share) and ``open_page(server)`` (a fresh
browser context at that ComfyUI, first-run window closed); the helpers are in ``e2e.frontend``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.comfyui_server import ComfyUIInstall, ComfyUIServer, find_install
from support import PACK_DIR, submodule
from support.keys import TEST_KEY

# Each sandbox task takes this long. The default poll schedule reads first at 1.5 s and then
# every 0.45 s from 3 s, so a 4-second task is still running when the first read has happened:
# there is time to interrupt or kill ComfyUI mid-poll (with real polling, no
# GROK_IMAGINE_POLL_SCALE), and the suite still takes a few minutes.
GENERATION_S = 4.0
STARTUP_HINT = "set COMFYUI_DIR to a ComfyUI checkout (with its requirements) to run them"
MODERN_DESIGN_SINCE = (1, 28, 0)
"""The first frontend generation we test that offers Modern Node Design (Nodes 2.0) in its
Settings (Comfy > Nodes 2.0). 1.27 has the setting only as a hidden experiment whose nodes draw no
badges at all, not even the frontend's own; 1.49 and 1.58 offer it (off by default)."""


@functools.cache
def node_designs() -> list[str]:
    """The node designs the browser tests run in: the classic canvas always, the modern (DOM)
    nodes where the frontend under test offers them."""
    install = find_install()
    if install is None:
        return ["classic"]
    return ["classic", "modern"] if install.frontend_version >= MODERN_DESIGN_SINCE else ["classic"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``design``: a browser test that takes it runs once per node design the frontend has."""
    if "design" in metafunc.fixturenames:
        metafunc.parametrize("design", node_designs())


@pytest.fixture(scope="session")
def comfyui_install() -> ComfyUIInstall:
    install = find_install()
    if install is None:
        pytest.skip(f"end-to-end tests need a real ComfyUI: {STARTUP_HINT}")
    return install


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    configured = os.environ.get("E2E_ARTIFACTS_DIR")
    path = Path(configured) if configured else PACK_DIR / "test-artifacts" / "e2e"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Timings:
    """Wall times worth reporting (startup, one task, concurrency, cancel), kept as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def record(self, name: str, value: Any) -> None:
        self.values[name] = round(value, 3) if isinstance(value, float) else value
        self.path.write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def timings(artifacts_dir: Path) -> Timings:
    return Timings(artifacts_dir / "timings.json")


def start_sandbox(**config: Any) -> Any:
    sandbox = submodule("sandbox")
    config.setdefault("keys", {TEST_KEY: 100_000})
    config.setdefault("generation_time", GENERATION_S)
    return sandbox.Sandbox(sandbox.SandboxConfig(**config)).start()


@pytest.fixture(scope="session")
def e2e_sandbox(comfyui_install: ComfyUIInstall) -> Iterator[Any]:
    sb = start_sandbox()
    yield sb
    sb.stop()


def comfyui_env(sandbox: Any, with_key: bool = True) -> dict[str, str]:
    """What a user puts in ComfyUI's environment: the key and (for the sandbox) the base URL."""
    env = {"APIINONE_BASE_URL": sandbox.base_url}
    if with_key:
        env["APIINONE_API_KEY"] = TEST_KEY
    return env


@pytest.fixture(scope="session")
def comfyui_factory(
    comfyui_install: ComfyUIInstall,
    e2e_sandbox: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ComfyUIServer]]:
    """``comfyui_factory(name, *extra_args, with_key=True)`` -> a started ComfyUI in a fresh
    base directory, pointed at the session's sandbox (with the test key in its environment
    unless ``with_key=False``); all are stopped at the end of the session."""
    servers: list[ComfyUIServer] = []

    def start(name: str, *extra_args: str, with_key: bool = True) -> ComfyUIServer:
        server = ComfyUIServer(
            comfyui_install,
            tmp_path_factory.mktemp(name),
            comfyui_env(e2e_sandbox, with_key),
            extra_args,
        )
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def comfyui(
    comfyui_factory: Callable[..., ComfyUIServer], comfyui_install: ComfyUIInstall, timings: Timings
) -> ComfyUIServer:
    """One ComfyUI for the server-side checks, logging at DEBUG so a key leak would show."""
    server = comfyui_factory("comfyui-base", "--verbose", "DEBUG")
    timings.record("comfyui_version", comfyui_install.version)
    timings.record("comfyui_startup_s", server.startup_seconds[-1])
    return server


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium(comfyui_install: ComfyUIInstall) -> Iterator[Any]:
    """Debian's Chromium through Playwright for Python, one for the whole session."""
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python is not installed (pip install playwright)",
    )
    from e2e.chromium import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def browser_comfyui(
    comfyui_factory: Callable[..., ComfyUIServer], chromium: Any, timings: Timings
) -> ComfyUIServer:
    """The ComfyUI the browser tests share (its own journal: queueing really creates tasks)."""
    server = comfyui_factory("comfyui-browser")
    timings.record("browser_comfyui_startup_s", server.startup_seconds[-1])
    return server


@pytest.fixture
def open_page(chromium: Any, artifacts_dir: Path) -> Iterator[Callable[..., Any]]:
    """``open_page(server, design="classic")`` -> a Playwright page in a fresh browser context at
    ``server``'s ComfyUI, usable (first-run window closed), its nodes in ``design``;
    ``page.console`` records its warnings. At the end, no page may have logged a warning or an
    error from the pack's own scripts."""
    from e2e import frontend

    pages: list[Any] = []

    def open_at(server: ComfyUIServer, design: str = "classic") -> Any:
        context = chromium.new_context(viewport=frontend.VIEWPORT)
        page = context.new_page()
        pages.append(page)
        page.set_default_timeout(frontend.UI_TIMEOUT_MS)
        page.console = frontend.watch_console(page)
        frontend.open_app(page, server)
        frontend.set_node_design(page, design)
        return page

    yield open_at
    with (artifacts_dir / "console.jsonl").open("a", encoding="utf-8") as log:
        for page in pages:  # every warning and error seen, the frontend's own too (to read)
            for kind, text, url in page.console.messages:
                log.write(json.dumps({"type": kind, "text": text[:400], "url": url}) + "\n")
    ours = [message for page in pages for message in page.console.from_pack()]
    for page in pages:
        page.context.close()
    assert ours == [], f"the pack's scripts logged: {ours}"
