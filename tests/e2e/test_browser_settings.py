"""The Settings entry in a real ComfyUI and a real browser: paste a key, see it masked, find it
nowhere but the 0600 key file.

Needs ``COMFYUI_DIR`` (a ComfyUI checkout with its requirements), Playwright for Python and a
Chromium (``CHROMIUM_PATH``, default ``/usr/bin/chromium``); skipped with the reason otherwise.
ComfyUI runs with ``--base-directory`` in a temporary folder, so its user directory, settings
and custom nodes are this test's own. ComfyUI's Python is ``COMFYUI_PYTHON`` if set, else a venv
inside or next to the checkout, else this interpreter. Screenshots go to ``E2E_ARTIFACTS_DIR``
(default: a temporary folder).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.chromium import CHROMIUM, CHROMIUM_ARGS
from support import PACK_DIR

pytestmark = pytest.mark.e2e

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
KEY = "sk-e2e-settings-0123456789-QRST"
STARTUP_TIMEOUT_S = 240
UI_TIMEOUT_MS = 60_000

if not COMFYUI_DIR:
    pytest.skip("COMFYUI_DIR is not set (path to a ComfyUI checkout)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (set CHROMIUM_PATH)", allow_module_level=True)


@dataclass
class RunningComfyUI:
    url: str
    base_dir: Path
    log_path: Path

    @property
    def user_dir(self) -> Path:
        return self.base_dir / "user"

    @property
    def key_file(self) -> Path:
        return self.user_dir / "grok_imagine" / "api_key"


def _comfyui_python(comfyui_dir: Path) -> str:
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    for venv in (
        comfyui_dir / "venv",
        comfyui_dir / ".venv",
        comfyui_dir.parent / "comfy-venv",
    ):
        candidate = venv / "bin" / "python"
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_key_route(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ComfyUI exited early:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/grok_imagine/key", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"ComfyUI did not serve the key route in time:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def settings_comfyui(tmp_path_factory) -> Iterator[RunningComfyUI]:
    comfyui_dir = Path(COMFYUI_DIR).resolve()
    base_dir = tmp_path_factory.mktemp("comfyui-base")
    (base_dir / "custom_nodes").mkdir()
    (base_dir / "custom_nodes" / "ComfyUI-Grok-Imagine").symlink_to(PACK_DIR)
    port = _free_port()
    log_path = base_dir / "comfyui.log"
    env = {k: v for k, v in os.environ.items() if k != "APIINONE_API_KEY"}
    command = [
        _comfyui_python(comfyui_dir),
        "main.py",
        "--cpu",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--base-directory",
        str(base_dir),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=comfyui_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_key_route(url, process, log_path)
        yield RunningComfyUI(url=url, base_dir=base_dir, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory) -> Path:
    configured = os.environ.get("E2E_ARTIFACTS_DIR")
    path = Path(configured) if configured else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(settings_comfyui):
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def _open_app(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function("window.app && window.app.graph && window.app.extensionManager")
    page.wait_for_load_state("networkidle")
    page.keyboard.press("Escape")  # the first-run template browser


def _open_grok_settings(page):
    page.keyboard.press("Control+Comma")
    page.get_by_text("Grok Imagine", exact=True).click()
    status = page.get_by_test_id("grok-imagine-key-status")
    page.wait_for_function(
        "() => { const s = document.querySelector('[data-testid=grok-imagine-key-status]');"
        " return s && !s.textContent.startsWith('checking'); }"
    )
    return status


def _wait_for_status(page, prefix: str) -> None:
    page.wait_for_function(
        "(prefix) => document.querySelector('[data-testid=grok-imagine-key-status]')"
        ".textContent.startsWith(prefix)",
        arg=prefix,
    )


def _browser_storage(page) -> str:
    return page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_settings_entry_stores_key_masked_and_nowhere_else(settings_comfyui, page, shots_dir):
    comfy = settings_comfyui
    _open_app(page, comfy.url)
    status = _open_grok_settings(page)
    assert status.text_content() == "not set"
    page.screenshot(path=str(shots_dir / "settings-01-not-set.png"))

    # A malformed key is refused with a readable message and nothing is stored.
    key_input = page.get_by_test_id("grok-imagine-key-input")
    key_input.fill("not a key at all")
    page.get_by_test_id("grok-imagine-key-save").click()
    _wait_for_status(page, "error:")
    assert "space or line break" in status.text_content()
    assert not comfy.key_file.exists()
    page.screenshot(path=str(shots_dir / "settings-02-rejected.png"))

    # Paste and save: masked status, empty field, 0600 file.
    key_input.fill(KEY)
    page.get_by_test_id("grok-imagine-key-save").click()
    _wait_for_status(page, "set")
    assert status.text_content() == f"set (…{KEY[-4:]})"
    assert key_input.input_value() == ""
    assert comfy.key_file.read_text().strip() == KEY
    assert stat.S_IMODE(comfy.key_file.stat().st_mode) == 0o600
    assert KEY not in page.content()
    page.screenshot(path=str(shots_dir / "settings-03-saved.png"))

    # After a reload the browser still only knows the masked status.
    _open_app(page, comfy.url)
    status = _open_grok_settings(page)
    assert status.text_content() == f"set (…{KEY[-4:]})"
    assert KEY not in page.content()
    page.screenshot(path=str(shots_dir / "settings-04-after-reload.png"))
    page.keyboard.press("Escape")

    # A workflow with real nodes (a Grok node too, when the pack provides it), saved through
    # ComfyUI's own command; it lands in user/default/workflows.
    node_count = page.evaluate(
        """async () => {
            await window.app.loadGraphData();
            const grok = window.LiteGraph.createNode("GrokImagineTextToImage");
            if (grok) window.app.graph.add(grok);
            // A node added from code is not seen by change tracking until it checks again.
            window.app.extensionManager.workflow.activeWorkflow?.changeTracker?.checkState();
            return window.app.graph.nodes.length;
        }"""
    )
    assert node_count > 0
    # (not awaited: the command's promise settles only once the name prompt is answered)
    page.evaluate("() => { window.app.extensionManager.command.execute('Comfy.SaveWorkflow'); }")
    name_box = page.locator(".p-dialog input").last
    name_box.fill("settings-e2e")
    name_box.press("Enter")
    workflow_file = comfy.user_dir / "default" / "workflows" / "settings-e2e.json"
    deadline = time.monotonic() + 60
    while not workflow_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workflow_file.exists(), "the workflow was not saved"
    assert len(json.loads(workflow_file.read_text())["nodes"]) == node_count
    page.screenshot(path=str(shots_dir / "settings-05-workflow-saved.png"))

    # The key is in the key file and nowhere else: not in ComfyUI's settings, the saved
    # workflow, any other file of the user directory, the browser's storage, or the log.
    settings_file = comfy.user_dir / "default" / "comfy.settings.json"
    assert "GrokImagine.ApiKey" not in json.loads(settings_file.read_text())
    leaking = [
        p
        for p in _files_under(comfy.user_dir)
        if p != comfy.key_file and KEY.encode() in p.read_bytes()
    ]
    assert leaking == []
    assert KEY not in _browser_storage(page)
    assert KEY not in comfy.log_path.read_text()

    # Remove deletes the file.
    status = _open_grok_settings(page)
    page.get_by_test_id("grok-imagine-key-remove").click()
    _wait_for_status(page, "not set")
    assert not comfy.key_file.exists()
    page.screenshot(path=str(shots_dir / "settings-06-removed.png"))
