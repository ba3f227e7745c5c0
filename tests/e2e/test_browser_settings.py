"""The Settings entry in a real ComfyUI and a real browser: paste a key, see it masked, find it
nowhere but the 0600 key file; and it looks like the frontend's own controls.

Needs ``COMFYUI_DIR``, Playwright for Python and a Chromium (see conftest); skipped with the
reason otherwise. This module's ComfyUI has no key in its environment (the entry would say
"set by APIINONE_API_KEY") and its own base directory, so its user directory, settings and
custom nodes are this test's own. Screenshots go to the artifacts folder; the README's picture
of the entry is ``settings-frontend-<version>-<dark|light>.png``.
"""

from __future__ import annotations

import json
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e.comfyui_server import ComfyUIServer

pytestmark = pytest.mark.e2e

frontend = pytest.importorskip("e2e.frontend", reason="Playwright for Python is not installed")

KEY = "sk-e2e-settings-0123456789-QRST"
STATUS = "grok-imagine-key-status"


@pytest.fixture(scope="module")
def settings_comfyui(comfyui_factory: Callable[..., ComfyUIServer], chromium: Any) -> Any:
    return comfyui_factory("comfyui-settings", with_key=False)


def key_file(server: ComfyUIServer) -> Path:
    return server.user_dir / "grok_imagine" / "api_key"


def open_grok_settings(page: Any) -> Any:
    """The Settings dialog at Grok Imagine, once the entry has asked the server for the status."""
    dialog = frontend.open_settings(page, "Grok Imagine")
    status = dialog.get_by_test_id(STATUS)
    frontend.expect(status).not_to_have_text("checking…")
    return status


def wait_for_status(page: Any, prefix: str) -> None:
    frontend.expect(page.get_by_test_id(STATUS)).to_have_text(re.compile("^" + re.escape(prefix)))


def browser_storage(page: Any) -> str:
    return page.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_settings_entry_stores_key_masked_and_nowhere_else(
    settings_comfyui: ComfyUIServer, open_page: Callable[..., Any], artifacts_dir: Path, design: str
) -> None:
    comfy = settings_comfyui
    page = open_page(comfy, design)
    status = open_grok_settings(page)
    assert status.text_content() == "not set"
    page.screenshot(path=str(artifacts_dir / "settings-01-not-set.png"))

    # A malformed key is refused with a readable message and nothing is stored.
    key_input = page.get_by_test_id("grok-imagine-key-input")
    save = page.get_by_test_id("grok-imagine-key-save")
    frontend.expect(save).to_have_accessible_name("Save")
    bad_key = "not a key at all"
    key_input.fill(bad_key)
    save.click()
    wait_for_status(page, "error: ")
    said = status.text_content()
    assert "space or line break" in said and bad_key not in said and "\n" not in said, said
    assert not key_file(comfy).exists()
    page.screenshot(path=str(artifacts_dir / "settings-02-rejected.png"))

    # Paste and save: masked status, empty field, 0600 file.
    key_input.fill(KEY)
    save.click()
    wait_for_status(page, "set")
    assert status.text_content() == f"set (…{KEY[-4:]})"
    assert key_input.input_value() == ""
    assert key_file(comfy).read_text().strip() == KEY
    assert stat.S_IMODE(key_file(comfy).stat().st_mode) == 0o600
    assert KEY not in page.content()
    page.screenshot(path=str(artifacts_dir / "settings-03-saved.png"))

    # After a reload the browser still only knows the masked status.
    frontend.open_app(page, comfy)
    frontend.set_node_design(page, design)
    status = open_grok_settings(page)
    assert status.text_content() == f"set (…{KEY[-4:]})"
    assert KEY not in page.content()
    page.screenshot(path=str(artifacts_dir / "settings-04-after-reload.png"))
    frontend.close_dialogs(page)

    # A workflow with real nodes (a Grok node too), saved through ComfyUI's own command; it
    # lands in user/default/workflows.
    page.evaluate("async () => { await window.app.loadGraphData(); }")
    frontend.add_node(page, "GrokImagineTextToImage", 60, 130)
    node_count = page.evaluate("() => window.app.graph.nodes.length")
    assert node_count > 1
    frontend.run_command(page, "Comfy.SaveWorkflow")  # settles once the name prompt is answered
    name_box = frontend.dialogs(page).get_by_role("textbox").last
    name_box.fill(f"settings-e2e-{design}")  # a new file in each design's run
    name_box.press("Enter")
    workflow_file = comfy.user_dir / "default" / "workflows" / f"settings-e2e-{design}.json"
    deadline = time.monotonic() + 60
    while not workflow_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workflow_file.exists(), "the workflow was not saved"
    assert len(json.loads(workflow_file.read_text())["nodes"]) == node_count
    page.screenshot(path=str(artifacts_dir / "settings-05-workflow-saved.png"))

    # The key is in the key file and nowhere else: not in ComfyUI's settings, the saved
    # workflow, any other file of the user directory, the browser's storage, or the log.
    settings_file = comfy.user_dir / "default" / "comfy.settings.json"
    assert "GrokImagine.ApiKey" not in json.loads(settings_file.read_text())
    leaking = [
        p
        for p in files_under(comfy.user_dir)
        if p != key_file(comfy) and KEY.encode() in p.read_bytes()
    ]
    assert leaking == []
    assert KEY not in browser_storage(page)
    assert KEY not in comfy.all_logs()

    # Remove deletes the file.
    open_grok_settings(page)
    remove = page.get_by_test_id("grok-imagine-key-remove")
    frontend.expect(remove).to_have_accessible_name("Remove")
    remove.click()
    wait_for_status(page, "not set")
    assert not key_file(comfy).exists()
    page.screenshot(path=str(artifacts_dir / "settings-06-removed.png"))
    frontend.close_dialogs(page)


def control_look(page: Any, test_id: str) -> dict[str, str]:
    return page.evaluate(
        """(id) => {
            const s = getComputedStyle(document.querySelector(`[data-testid="${id}"]`));
            return {background: s.backgroundColor, radius: s.borderTopLeftRadius,
                    border: s.borderTopStyle, font: s.fontFamily, cursor: s.cursor};
        }""",
        test_id,
    )


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_settings_entry_looks_like_the_frontends_own_controls(
    settings_comfyui: ComfyUIServer,
    open_page: Callable[..., Any],
    artifacts_dir: Path,
    theme: str,
    design: str,
) -> None:
    """The buttons take the frontend's button style (a coloured, rounded Save; no browser
    default grey box), the field its text-field style, on whichever frontend this is, in its
    dark and its light colour palette, in either node design; the daily limit entry's too."""
    page = open_page(settings_comfyui, design)
    frontend.set_setting(page, "Comfy.ColorPalette", theme)
    try:
        check_the_look(page, artifacts_dir, theme, design)
    finally:
        frontend.set_setting(page, "Comfy.ColorPalette", "dark")


def check_the_look(page: Any, artifacts_dir: Path, theme: str, design: str) -> None:
    open_grok_settings(page)
    page.wait_for_timeout(500)  # the palette's colours settle
    plain = page.evaluate(
        """() => {
            const b = document.createElement('button');
            document.body.append(b);
            const s = getComputedStyle(b);
            const look = {background: s.backgroundColor, radius: s.borderTopLeftRadius};
            b.remove();
            return look;
        }"""
    )
    save = control_look(page, "grok-imagine-key-save")
    remove = control_look(page, "grok-imagine-key-remove")
    field = control_look(page, "grok-imagine-key-input")
    limit_save = control_look(page, "grok-imagine-limit-save")
    limit_field = control_look(page, "grok-imagine-limit-input")
    for look in (save, remove, limit_save):
        assert look["background"] != plain["background"], look
        assert look["radius"] not in ("0px", plain["radius"]), look
        assert look["border"] in ("none", "solid"), look
    assert save["background"] != remove["background"]  # primary and secondary
    assert limit_save["background"] == save["background"]  # both primary
    for look in (field, limit_field):
        assert look["radius"] != "0px" and look["background"] != "rgba(0, 0, 0, 0)", look
    # The whole Settings dialog at Grok Imagine: the entry among the frontend's own controls.
    suffix = "" if design == "classic" else f"-{design}"
    frontend.dialogs(page).first.screenshot(
        path=str(
            artifacts_dir
            / f"settings-frontend-{frontend.frontend_version(page)}-{theme}{suffix}.png"
        )
    )
    frontend.close_dialogs(page)
