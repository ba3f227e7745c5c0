"""The pack in ComfyUI's real frontend, driven by Debian's Chromium through Playwright.

Needs ``COMFYUI_DIR`` (see conftest), Playwright for Python (no browser download: it drives
``CHROMIUM_PATH``, default ``/usr/bin/chromium``). The module has its own ComfyUI, so the journal
is empty and queueing a template really creates a task. Every step leaves a screenshot in the
artifacts folder (``test-artifacts/e2e`` unless ``E2E_ARTIFACTS_DIR`` says otherwise).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.api_graphs import GROK_NODES, LOAD_TASK, TEXT_TO_IMAGE, UPSCALE
from e2e.chromium import CHROMIUM, CHROMIUM_ARGS
from e2e.comfyui_server import PACK_FOLDER_NAME, ComfyUIServer
from e2e.sandbox_view import WAIT_S
from support import PACK_DIR

pytestmark = pytest.mark.e2e

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
UI_TIMEOUT_MS = 60_000
EXAMPLES_DIR = PACK_DIR / "example_workflows"
STATUS_WIDGET = "$$node-text-preview"  # where the frontend shows a node's progress text
DISPLAY_NAMES = {
    TEXT_TO_IMAGE: "Grok Text-to-Image",
    UPSCALE: "Grok Upscale",
    LOAD_TASK: "Grok Load Task",
}


@pytest.fixture(scope="module")
def browser_comfyui(comfyui_factory: Callable[..., ComfyUIServer]) -> ComfyUIServer:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    return comfyui_factory("comfyui-browser")


@pytest.fixture
def page(browser_comfyui: ComfyUIServer) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(UI_TIMEOUT_MS)
            open_app(page, browser_comfyui.url)
            yield page
        finally:
            browser.close()


def open_app(page: Any, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function("window.app && window.app.graph && window.app.extensionManager")
    page.wait_for_load_state("networkidle")
    close_dialogs(page)  # the template browser opens by itself on a first visit


def close_dialogs(page: Any) -> None:
    for _ in range(3):
        if page.locator(".p-dialog").count() == 0:
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.json"))


def example_node_types(name: str) -> list[str]:
    workflow = json.loads((EXAMPLES_DIR / f"{name}.json").read_text())
    return sorted(node["type"] for node in workflow["nodes"])


def graph_node_types(page: Any) -> list[str]:
    return sorted(page.evaluate("() => window.app.graph.nodes.map(n => n.type)"))


def run_command(page: Any, command: str) -> None:
    page.evaluate(f"() => {{ window.app.extensionManager.command.execute({command!r}); }}")


def toasts(page: Any) -> list[str]:
    """The texts of the notifications the frontend shows (schema warnings, errors, ...)."""
    messages = page.locator(".p-toast-message")
    return [messages.nth(i).inner_text() for i in range(messages.count())]


def schema_complaints(page: Any) -> list[str]:
    """The frontend checks every loaded workflow against its schema and says so in a toast."""
    return [text for text in toasts(page) if "Invalid workflow" in text]


def visible_text(page: Any, text: str) -> bool:
    locator = page.get_by_text(text)
    return any(locator.nth(i).is_visible() for i in range(locator.count()))


# -- finding the nodes ----------------------------------------------------------------------------


def test_node_search_lists_the_three_grok_nodes(page: Any, artifacts_dir: Path) -> None:
    page.evaluate("() => window.app.graph.clear()")
    page.mouse.dblclick(700, 500)  # an empty spot of the canvas opens the node search
    search = page.locator(".comfy-vue-node-search-box input").first
    search.wait_for()
    search.fill("Grok")
    options = page.locator("[role=option]")
    page.wait_for_function(
        "(names) => names.every(n => [...document.querySelectorAll('[role=option]')]"
        ".some(o => o.textContent.includes(n)))",
        arg=list(DISPLAY_NAMES.values()),
    )
    page.screenshot(path=str(artifacts_dir / "browser-01-node-search.png"))
    texts = [options.nth(i).inner_text() for i in range(options.count())]
    for name in DISPLAY_NAMES.values():
        (match,) = [t for t in texts if t.split("\n")[0].strip() == name]
        assert "Grok Imagine" in match  # the category, shown under the name
    page.keyboard.press("Escape")


def test_the_three_nodes_on_the_canvas(page: Any, artifacts_dir: Path) -> None:
    """Text-to-Image wired into Upscale, and Load Task: the README's picture of the nodes."""
    widgets = page.evaluate(
        """([t2i, up, load]) => {
            const app = window.app;
            app.graph.clear();
            const make = (type, x, y) => {
                const node = window.LiteGraph.createNode(type);
                node.pos = [x, y];
                app.graph.add(node);
                return node;
            };
            const a = make(t2i, 60, 130);
            const b = make(up, 560, 130);
            const c = make(load, 560, 400);
            const taskSlot = a.outputs.findIndex(o => o.name.toLowerCase().includes('task'));
            a.connect(taskSlot, b, b.inputs.findIndex(i => i.name === 'task_id'));
            a.widgets.find(w => w.name === 'prompt').value =
                'A lighthouse on a basalt cliff at dusk, volumetric light, photorealistic';
            app.canvas.ds.offset = [0, 0];
            app.canvas.ds.scale = 1;
            app.graph.setDirtyCanvas(true, true);
            return [a, b, c].map(n => [n.type, n.widgets.map(w => w.name), n.outputs.length]);
        }""",
        [TEXT_TO_IMAGE, UPSCALE, LOAD_TASK],
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "browser-02-three-nodes.png"))
    page.screenshot(
        path=str(artifacts_dir / "nodes.png"), clip={"x": 80, "y": 110, "width": 820, "height": 440}
    )
    by_type = {node_type: (names, outputs) for node_type, names, outputs in widgets}
    assert {"prompt", "seed", "aspect_ratio"} <= set(by_type[TEXT_TO_IMAGE][0])
    assert "task_id" in by_type[UPSCALE][0] and "task_id" in by_type[LOAD_TASK][0]
    assert by_type[TEXT_TO_IMAGE][1] >= 2


# -- templates ------------------------------------------------------------------------------------


def open_pack_templates(page: Any) -> Any:
    run_command(page, "Comfy.BrowseTemplates")
    dialog = page.locator(".p-dialog")
    dialog.get_by_text(PACK_FOLDER_NAME, exact=True).first.click()
    return dialog


def test_example_workflows_are_templates_that_load(page: Any, artifacts_dir: Path) -> None:
    names = example_names()
    assert len(names) >= 3
    dialog = open_pack_templates(page)
    for name in names:
        card = dialog.locator(f"[data-testid='template-workflow-{name}']")
        card.wait_for()
        thumbnail = card.locator("img").first
        thumbnail.wait_for()
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
        )
    page.screenshot(path=str(artifacts_dir / "browser-03-templates.png"))

    for index, name in enumerate(names):
        if index:
            dialog = open_pack_templates(page)
        dialog.locator(f"[data-testid='template-workflow-{name}']").click()
        page.wait_for_function(
            "(count) => window.app.graph.nodes.length === count"
            " && document.querySelectorAll('.p-dialog').length === 0",
            arg=len(example_node_types(name)),
        )
        page.wait_for_timeout(500)  # a schema complaint arrives as a toast right after loading
        page.screenshot(path=str(artifacts_dir / f"browser-04-template-{name}.png"))
        assert graph_node_types(page) == example_node_types(name)
        assert set(graph_node_types(page)) & set(GROK_NODES)
        assert schema_complaints(page) == [], f"{name}.json does not match the frontend's schema"


# -- queueing a template --------------------------------------------------------------------------


def text_to_image_example() -> str:
    for name in example_names():
        types = set(example_node_types(name))
        if TEXT_TO_IMAGE in types and not types & {UPSCALE, LOAD_TASK}:
            return name
    raise AssertionError("no text-to-image example workflow")


def test_queued_template_shows_status_then_the_image(
    page: Any,
    browser_comfyui: ComfyUIServer,
    e2e_sandbox: Any,
    artifacts_dir: Path,
    timings: Any,
) -> None:
    name = text_to_image_example()
    open_pack_templates(page).locator(f"[data-testid='template-workflow-{name}']").click()
    page.wait_for_function("() => document.querySelectorAll('.p-dialog').length === 0")
    ids = page.evaluate(
        """([t2i]) => {
            // Lay the two nodes out side by side (the README's picture of a result).
            const app = window.app;
            const grok = app.graph.nodes.find(n => n.type === t2i);
            const save = app.graph.nodes.find(n => n.type === 'SaveImage');
            app.graph.nodes.filter(n => n !== grok && n !== save).forEach(n => n.pos = [60, 700]);
            grok.pos = [60, 130];
            save.pos = [520, 130];
            save.size = [560, 420];
            app.canvas.ds.offset = [0, 0];
            app.canvas.ds.scale = 1;
            app.graph.setDirtyCanvas(true, true);
            return {grok: grok.id, save: save.id};
        }""",
        [TEXT_TO_IMAGE],
    )
    known_tasks = set(e2e_sandbox.task_ids())

    began = time.monotonic()
    page.locator("[data-testid='queue-button']").first.click()
    status_texts: list[str] = []
    shot_taken = False
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        state = page.evaluate(
            """([grok, save, widget]) => {
                const g = window.app.graph.getNodeById(grok);
                const s = window.app.graph.getNodeById(save);
                const w = (g.widgets || []).find(w => w.name === widget);
                return {text: w ? String(w.value ?? '') : '', images: (s.imgs || []).length};
            }""",
            [ids["grok"], ids["save"], STATUS_WIDGET],
        )
        if state["text"] and state["text"] not in status_texts:
            status_texts.append(state["text"])
            if not shot_taken and not state["images"]:
                page.screenshot(path=str(artifacts_dir / "browser-05-running-status.png"))
                shot_taken = True
        if state["images"]:
            break
        assert not visible_text(page, "Sign In Required"), "the frontend asked for a sign-in"
        page.wait_for_timeout(100)
    else:
        pytest.fail(f"no image in the Save Image node after {WAIT_S:.0f} s: {status_texts}")
    timings.record("browser_template_run_s", time.monotonic() - began)
    page.wait_for_timeout(700)  # let the preview finish drawing
    page.screenshot(path=str(artifacts_dir / "browser-06-done.png"))
    result_area = {"x": 80, "y": 110, "width": 1080, "height": 500}
    page.screenshot(path=str(artifacts_dir / "result.png"), clip=result_area)

    new_tasks = [t for t in e2e_sandbox.task_ids() if t not in known_tasks]
    assert len(new_tasks) == 1, new_tasks
    assert shot_taken, f"no status text was shown while the node ran: {status_texts}"
    assert any(new_tasks[0] in text for text in status_texts), status_texts
    timings.record("browser_status_texts", status_texts)
    assert page.locator(".p-dialog").count() == 0, "a dialog (error or sign-in) opened"
    assert schema_complaints(page) == []
    assert not visible_text(page, "Sign In Required")


def test_empty_prompt_is_refused_with_the_node_marked(
    page: Any, e2e_sandbox: Any, artifacts_dir: Path
) -> None:
    node_id = page.evaluate(
        """([t2i]) => {
            const app = window.app;
            app.graph.clear();
            const grok = window.LiteGraph.createNode(t2i);
            grok.pos = [60, 130];
            app.graph.add(grok);
            const save = window.LiteGraph.createNode('SaveImage');
            save.pos = [520, 130];
            app.graph.add(save);
            grok.connect(0, save, 0);
            grok.widgets.find(w => w.name === 'prompt').value = '';
            return grok.id;
        }""",
        [TEXT_TO_IMAGE],
    )
    creates = e2e_sandbox.create_requests
    page.locator("[data-testid='queue-button']").first.click()
    page.wait_for_function(
        "(id) => window.app.lastNodeErrors && window.app.lastNodeErrors[id]", arg=node_id
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "browser-07-empty-prompt-refused.png"))
    errors = page.evaluate("(id) => window.app.lastNodeErrors[id].errors", node_id)
    assert errors and "prompt" in json.dumps(errors).lower()
    assert e2e_sandbox.create_requests == creates
