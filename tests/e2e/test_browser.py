"""The pack in ComfyUI's real frontend, driven by Debian's Chromium through Playwright.

Needs ``COMFYUI_DIR`` (see conftest), Playwright for Python (no browser download: it drives
``CHROMIUM_PATH``, default ``/usr/bin/chromium``). The same test code runs on every frontend we
test (1.27, 1.49, 1.58): see ``e2e.frontend`` for how things are found. Tests that take
``design`` run in each node design the frontend offers. The browser ComfyUI has its own journal,
so queueing a template really creates a task. Every step leaves a screenshot in the artifacts
folder (``test-artifacts/e2e`` unless ``E2E_ARTIFACTS_DIR`` says otherwise); the README's pictures
are named after the frontend version (and ``-modern`` for the modern design).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e.api_graphs import GROK_NODES, LOAD_TASK, TEXT_TO_IMAGE, UPSCALE
from e2e.comfyui_server import PACK_FOLDER_NAME, ComfyUIServer
from e2e.sandbox_view import WAIT_S, unique
from support import PACK_DIR, pack
from support.status_text import KEPT, catalog, say

pytestmark = pytest.mark.e2e

frontend = pytest.importorskip("e2e.frontend", reason="Playwright for Python is not installed")

EXAMPLES_DIR = PACK_DIR / "example_workflows"
LOCALES_DIR = PACK_DIR / "locales"
STATUS_WIDGET = "grok_imagine_status"  # the pack's status widget (web/js/grok_imagine_status.js)
DISPLAY_NAMES = {node: pack.NODE_DISPLAY_NAME_MAPPINGS[node] for node in GROK_NODES}
SEARCHES = ("grok", "grok imagine", "api in one", "apiinone")  # what users type (issue 15)
PACK_WEB_URL = f"/extensions/{PACK_FOLDER_NAME}/"


@pytest.fixture
def page(open_page: Callable[..., Any], browser_comfyui: ComfyUIServer) -> Any:
    return open_page(browser_comfyui)


@pytest.fixture
def designed_page(
    open_page: Callable[..., Any], browser_comfyui: ComfyUIServer, design: str
) -> Any:
    """The page with its nodes in ``design`` (each design the frontend offers)."""
    return open_page(browser_comfyui, design)


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.json"))


def example_node_types(name: str) -> list[str]:
    workflow = json.loads((EXAMPLES_DIR / f"{name}.json").read_text())
    return sorted(node["type"] for node in workflow["nodes"])


def schema_complaints(page: Any) -> list[str]:
    """The frontend checks every loaded workflow against its schema and says so in a toast."""
    return [text for text in frontend.toasts(page) if "Invalid workflow" in text]


def versioned(artifacts_dir: Path, name: str, page: Any) -> Path:
    """``nodes.png`` -> ``nodes-frontend-1.49.6.png`` (``...-modern.png`` in the modern node
    design): one picture per frontend and design tested."""
    stem, suffix = name.rsplit(".", 1)
    design = "" if frontend.node_design(page) == "classic" else "-modern"
    return artifacts_dir / f"{stem}-frontend-{frontend.frontend_version(page)}{design}.{suffix}"


# -- finding the nodes ----------------------------------------------------------------------------


@pytest.mark.parametrize("query", SEARCHES)
def test_node_search_finds_the_three_nodes_labelled_api_in_one(
    page: Any, query: str, artifacts_dir: Path, timings: Any
) -> None:
    frontend.clear_graph(page)
    texts = frontend.search_nodes(page, query, list(DISPLAY_NAMES.values()))
    slug = re.sub(r"\W+", "-", query)
    page.screenshot(path=str(artifacts_dir / f"browser-01-node-search-{slug}.png"))
    for name in DISPLAY_NAMES.values():
        (match,) = [t for t in texts if t.split("\n")[0].strip() == name]
        assert "Grok Imagine" in match  # the category, shown with the name
        assert name.startswith("API in One")
    # ComfyUI's own Grok nodes (0.33 and newer) may be listed too, never under our names.
    theirs = [t.split("\n")[0].strip() for t in texts if "partner" in t.lower()]
    assert not set(theirs) & set(DISPLAY_NAMES.values())
    timings.record(f"search_{slug}_results", len(texts))
    frontend.close_search(page)


def test_the_three_nodes_on_the_canvas(designed_page: Any, artifacts_dir: Path) -> None:
    """Text-to-Image wired into Upscale, and Load Task: the README's picture of the nodes."""
    page = designed_page
    frontend.clear_graph(page)
    ids = {
        TEXT_TO_IMAGE: frontend.add_node(page, TEXT_TO_IMAGE, 60, 130),
        UPSCALE: frontend.add_node(page, UPSCALE, 560, 130),
        LOAD_TASK: frontend.add_node(page, LOAD_TASK, 560, 400),
    }
    widgets = page.evaluate(
        """([t2i, up, load]) => {
            const graph = window.app.graph;
            const [a, b, c] = [t2i, up, load].map(id => graph.getNodeById(id));
            const taskSlot = a.outputs.findIndex(o => o.name.toLowerCase().includes('task'));
            a.connect(taskSlot, b, b.inputs.findIndex(i => i.name === 'task_id'));
            a.widgets.find(w => w.name === 'prompt').value =
                'A lighthouse on a basalt cliff at dusk, volumetric light, photorealistic';
            return [a, b, c].map(
                n => [n.type, n.title, n.widgets.map(w => w.name), n.outputs.length]
            );
        }""",
        [ids[TEXT_TO_IMAGE], ids[UPSCALE], ids[LOAD_TASK]],
    )
    frontend.note_graph_changed(page)
    frontend.reset_view(page)
    page.wait_for_timeout(500)
    page.screenshot(path=str(versioned(artifacts_dir, "browser-02-three-nodes.png", page)))
    page.screenshot(
        path=str(versioned(artifacts_dir, "nodes.png", page)),
        clip=frontend.canvas_clip(page, 30, 80, 880, 470),
    )
    by_type = {node_type: (title, names, outputs) for node_type, title, names, outputs in widgets}
    for node_type, (title, _, _) in by_type.items():
        assert title == DISPLAY_NAMES[node_type]
    assert {"prompt", "seed", "aspect_ratio"} <= set(by_type[TEXT_TO_IMAGE][1])
    assert "task_id" in by_type[UPSCALE][1] and "task_id" in by_type[LOAD_TASK][1]
    assert by_type[TEXT_TO_IMAGE][2] >= 2


# -- templates ------------------------------------------------------------------------------------


def open_pack_templates(page: Any) -> Any:
    frontend.run_command(page, "Comfy.BrowseTemplates")
    dialog = frontend.dialogs(page).first
    dialog.get_by_text(PACK_FOLDER_NAME, exact=True).first.click()
    return dialog


def template_card(dialog: Any, name: str) -> Any:
    return dialog.get_by_test_id(f"template-workflow-{name}")


def test_example_workflows_are_templates_that_load(page: Any, artifacts_dir: Path) -> None:
    names = example_names()
    assert len(names) >= 3
    dialog = open_pack_templates(page)
    for name in names:
        card = template_card(dialog, name)
        card.wait_for()
        thumbnail = card.get_by_role("img").first
        thumbnail.wait_for()
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
        )
    page.screenshot(path=str(artifacts_dir / "browser-03-templates.png"))

    for index, name in enumerate(names):
        if index:
            dialog = open_pack_templates(page)
        template_card(dialog, name).click()
        frontend.expect(frontend.dialogs(page)).to_have_count(0)
        page.wait_for_function(
            "(count) => window.app.graph.nodes.length === count", arg=len(example_node_types(name))
        )
        page.wait_for_timeout(500)  # a schema complaint arrives as a toast right after loading
        page.screenshot(path=str(artifacts_dir / f"browser-04-template-{name}.png"))
        assert frontend.node_types(page) == example_node_types(name)
        assert set(frontend.node_types(page)) & set(GROK_NODES)
        assert schema_complaints(page) == [], f"{name}.json does not match the frontend's schema"


# -- queueing a template --------------------------------------------------------------------------


def text_to_image_example() -> str:
    for name in example_names():
        types = set(example_node_types(name))
        if TEXT_TO_IMAGE in types and not types & {UPSCALE, LOAD_TASK}:
            return name
    raise AssertionError("no text-to-image example workflow")


def test_queued_template_shows_status_then_the_image(
    designed_page: Any,
    browser_comfyui: ComfyUIServer,
    e2e_sandbox: Any,
    artifacts_dir: Path,
    timings: Any,
) -> None:
    page = designed_page
    name = text_to_image_example()
    template_card(open_pack_templates(page), name).click()
    frontend.expect(frontend.dialogs(page)).to_have_count(0)
    page.wait_for_function(
        "(count) => window.app.graph.nodes.length === count", arg=len(example_node_types(name))
    )
    ids = page.evaluate(
        """([t2i, seed]) => {
            // Lay the two nodes out side by side (the README's picture of a result).
            const graph = window.app.graph;
            const grok = graph.nodes.find(n => n.type === t2i);
            const save = graph.nodes.find(n => n.type === 'SaveImage');
            graph.nodes.filter(n => n !== grok && n !== save).forEach(n => n.pos = [60, 700]);
            grok.pos = [60, 130];
            save.pos = [520, 130];
            save.size = [560, 420];
            // A seed of its own: a new task in each design's run (not the journal's or
            // ComfyUI's cached result of the run before).
            grok.widgets.find(w => w.name === 'seed').value = seed;
            return {grok: grok.id, save: save.id};
        }""",
        [TEXT_TO_IMAGE, random.randrange(1, 2**48)],
    )
    frontend.reset_view(page)
    known_tasks = set(e2e_sandbox.task_ids())

    began = time.monotonic()
    page.get_by_test_id("queue-button").first.click()
    status_texts: list[str] = []
    shot_taken = False
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        state = page.evaluate(
            f"""([grok, save, widget]) => {{
                const g = window.app.graph.getNodeById(grok);
                const w = (g.widgets || []).find(w => w.name === widget);
                return {{text: w ? String(w.value ?? '') : '',
                        images: ({frontend.IMAGE_COUNT})(save)}};
            }}""",
            [ids["grok"], ids["save"], STATUS_WIDGET],
        )
        if state["text"] and state["text"] not in status_texts:
            status_texts.append(state["text"])
            if not shot_taken and not state["images"]:
                page.screenshot(path=str(artifacts_dir / "browser-05-running-status.png"))
                shot_taken = True
        if state["images"]:
            break
        assert not frontend.visible_text(page, "Sign In Required"), "the frontend asked to sign in"
        page.wait_for_timeout(100)
    else:
        pytest.fail(f"no image in the Save Image node after {WAIT_S:.0f} s: {status_texts}")
    timings.record("browser_template_run_s", time.monotonic() - began)
    page.wait_for_timeout(700)  # let the preview finish drawing; the run has ended by now
    page.screenshot(path=str(artifacts_dir / "browser-06-done.png"))
    result_area = frontend.canvas_clip(page, 30, 80, 1080, 500)
    page.screenshot(path=str(versioned(artifacts_dir, "result.png", page)), clip=result_area)

    new_tasks = [t for t in e2e_sandbox.task_ids() if t not in known_tasks]
    assert len(new_tasks) == 1, new_tasks
    assert shot_taken, f"no status text was shown while the node ran: {status_texts}"
    assert any(new_tasks[0] in text for text in status_texts), status_texts
    # After the run the last status stays: what it charged, how many images, which task.
    page.wait_for_timeout(1500)
    last = page.evaluate(
        """([grok, widget]) => {
            const g = window.app.graph.getNodeById(grok);
            const w = (g.widgets || []).find(w => w.name === widget);
            return w ? String(w.value ?? '') : '';
        }""",
        [ids["grok"], STATUS_WIDGET],
    )
    assert f"task {new_tasks[0]} · new (5 credits charged)" in last, last
    assert "done, 6 images" in last, last
    # The status is shown, never saved in the workflow nor sent with the prompt.
    saved, sent = page.evaluate(
        """async (id) => {
            const node = window.app.graph.getNodeById(id);
            const prompt = await window.app.graphToPrompt();
            return [JSON.stringify(node.serialize()), prompt.output[String(id)].inputs];
        }""",
        ids["grok"],
    )
    assert new_tasks[0] not in saved and STATUS_WIDGET not in sent, (saved, sent)
    timings.record("browser_status_texts", status_texts)
    frontend.expect(frontend.dialogs(page)).to_have_count(0)  # no error or sign-in dialog
    assert schema_complaints(page) == []
    assert not frontend.visible_text(page, "Sign In Required")


def test_empty_prompt_is_refused_with_the_node_marked(
    page: Any, e2e_sandbox: Any, artifacts_dir: Path
) -> None:
    frontend.clear_graph(page)
    grok = frontend.add_node(page, TEXT_TO_IMAGE, 60, 130)
    save = frontend.add_node(page, "SaveImage", 520, 130)
    page.evaluate(
        """([grok, save]) => {
            const graph = window.app.graph;
            const node = graph.getNodeById(grok);
            node.connect(0, graph.getNodeById(save), 0);
            node.widgets.find(w => w.name === 'prompt').value = '';
        }""",
        [grok, save],
    )
    frontend.note_graph_changed(page)
    creates = e2e_sandbox.create_requests
    page.get_by_test_id("queue-button").first.click()
    page.wait_for_function(
        "(id) => window.app.lastNodeErrors && window.app.lastNodeErrors[id]", arg=grok
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "browser-07-empty-prompt-refused.png"))
    errors = page.evaluate("(id) => window.app.lastNodeErrors[id].errors", grok)
    assert errors and "prompt" in json.dumps(errors).lower()
    assert e2e_sandbox.create_requests == creates
    frontend.close_dialogs(page)  # newer frontends show the errors in a dialog too


# -- in Chinese -----------------------------------------------------------------------------------


def chinese(name: str) -> dict[str, Any]:
    return json.loads((LOCALES_DIR / "zh" / name).read_text(encoding="utf-8"))


# Words of the pack that stay as they are in every language: product and gateway names, the
# environment variables, task ids, model ids and a masked key's last characters (facts, not
# words), and "ID", which Chinese UIs write so.
KEPT_IN_EVERY_LANGUAGE = re.compile(
    r"API in One|Grok Imagine|Grok|APIINONE_API_KEY|GROK_IMAGINE_DAILY_CREDIT_LIMIT|\bID\b"
    r"|\b\w+_grok\b|grok-imagine/[\w-]+|\[[0-9a-f]{10}\]|…\w+"
)


def english_words(text: str) -> list[str]:
    """The English words in ``text`` beside the names every language keeps."""
    return re.findall(r"[A-Za-z]{2,}", KEPT_IN_EVERY_LANGUAGE.sub(" ", text))


def has_cjk_font() -> bool:
    """Whether Chromium can draw Chinese here (without a CJK font it draws empty boxes)."""
    if shutil.which("fc-list") is None:
        return False
    listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return bool(listed.stdout.strip())


def test_in_chinese_the_nodes_status_panel_and_settings_entries_are_translated(
    open_page: Callable[..., Any],
    browser_comfyui: ComfyUIServer,
    e2e_sandbox: Any,
    artifacts_dir: Path,
    design: str,
) -> None:
    assert has_cjk_font(), "no Chinese font for the screenshots: apt-get install fonts-noto-cjk"
    page = open_page(browser_comfyui, design)
    frontend.set_setting(page, "Comfy.Locale", "zh")
    try:
        frontend.open_app(page, browser_comfyui)  # the language applies from the next load
        frontend.set_node_design(page, design)
        assert frontend.get_setting(page, "Comfy.Locale") == "zh"
        check_chinese_nodes(page, artifacts_dir, design)
        check_chinese_error(page, e2e_sandbox, artifacts_dir, design)
        check_chinese_settings(page, artifacts_dir, design)
    finally:
        frontend.set_setting(page, "Comfy.Locale", "en")


def check_chinese_nodes(page: Any, artifacts_dir: Path, design: str) -> None:
    node_defs = chinese("nodeDefs.json")
    frontend.clear_graph(page)
    node = frontend.add_node(page, TEXT_TO_IMAGE, 60, 130)
    preview = frontend.add_node(page, "PreviewImage", 560, 130)
    title, labels, cost = page.evaluate(
        """([id, preview, prompt]) => {
            const node = window.app.graph.getNodeById(id);
            node.connect(0, window.app.graph.getNodeById(preview), 0);
            node.widgets.find(w => w.name === 'prompt').value = prompt;
            return [node.title, Object.fromEntries(node.widgets.map(w => [w.name, w.label])),
                    node.grokImagineCost];
        }""",
        [node, preview, unique("灯塔上的猫 水彩")],
    )
    assert title == node_defs[TEXT_TO_IMAGE]["display_name"]
    assert labels["prompt"] == node_defs[TEXT_TO_IMAGE]["inputs"]["prompt"]["name"]
    assert cost == "5 积分", cost
    frontend.note_graph_changed(page)
    if design == "classic":
        expected = [node_defs[node_type]["display_name"] for node_type in GROK_NODES]
        frontend.search_nodes(page, "grok", expected)
        page.screenshot(path=str(artifacts_dir / "browser-08-search-zh.png"))
        frontend.close_search(page)

    page.evaluate("() => window.app.queuePrompt(0, 1)")
    frontend.wait_for_images(page, preview, WAIT_S)
    done = say("status.state.done", catalog("zh"), count=6)
    page.wait_for_function(
        """([id, name, done]) => {
            const w = (window.app.graph.getNodeById(id).widgets || []).find(w => w.name === name);
            return w && String(w.value).includes(done);
        }""",
        arg=[node, STATUS_WIDGET, done],
        timeout=WAIT_S * 1000,
    )
    frontend.reset_view(page)
    page.wait_for_timeout(500)
    status = page.get_by_test_id("grok-imagine-status").filter(visible=True).first.inner_text()
    charged = say("status.outcome.new", catalog("zh"), credits=5)
    assert done in status and charged in status, status
    assert english_words(status) == [], status

    frontend.run_command(page, "Workspace.ToggleSidebarTab.grok-imagine")
    panel = page.get_by_test_id("grok-imagine-panel")
    panel.wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=grok-imagine-task-row]').length > 0"
    )
    page.wait_for_timeout(300)
    text = panel.inner_text()
    assert "今天" in text and "成功" in text, text
    prompts = panel.get_by_test_id("grok-imagine-prompt")  # what the users typed, as typed
    ours = text
    for index in range(prompts.count()):
        ours = ours.replace(prompts.nth(index).inner_text(), "")
    assert english_words(ours) == [], ours
    page.screenshot(path=str(artifacts_dir / f"browser-08b-status-and-panel-zh-{design}.png"))
    frontend.run_command(page, "Workspace.ToggleSidebarTab.grok-imagine")


def check_chinese_error(page: Any, sandbox: Any, artifacts_dir: Path, design: str) -> None:
    """An error the pack words itself, on the node in Chinese: the file host serves an HTML page
    for every result file (what happened, a download's kind of failure, was English before)."""
    frontend.clear_graph(page)
    node = frontend.add_node(page, TEXT_TO_IMAGE, 60, 130)
    preview = frontend.add_node(page, "PreviewImage", 560, 130)
    page.evaluate(
        """([id, preview, prompt]) => {
            const node = window.app.graph.getNodeById(id);
            node.connect(0, window.app.graph.getNodeById(preview), 0);
            node.widgets.find(w => w.name === 'prompt').value = prompt;
        }""",
        [node, preview, unique("雨中的灯笼 水墨")],
    )
    frontend.note_graph_changed(page)
    failed = say("status.state.failed", catalog("zh"))
    sandbox.faults.download = "not_image"
    try:
        page.evaluate("() => window.app.queuePrompt(0, 1)")
        page.wait_for_function(
            """([id, name, failed]) => {
                const node = window.app.graph.getNodeById(id);
                const w = (node.widgets || []).find(w => w.name === name);
                return w && String(w.value).includes(failed);
            }""",
            arg=[node, STATUS_WIDGET, failed],
            timeout=WAIT_S * 1000,
        )
    finally:
        sandbox.faults.download = None
    frontend.close_dialogs(page)  # ComfyUI's own dialog says the node failed (its words)
    frontend.reset_view(page)
    page.wait_for_timeout(500)
    status = page.get_by_test_id("grok-imagine-status").filter(visible=True).first.inner_text()
    what = chinese("main.json")["grokImagine"]["what"]
    looks_like = what["aWebPage"]
    assert failed in status and looks_like in status and "不是图像" in status, status
    # the result file's address and the task id are facts, shown as they came; format names
    # (HTML, JPEG) are kept in every language, as the unit tests of the error words allow
    assert english_words(KEPT.sub(" ", status)) == [], status
    page.screenshot(path=str(artifacts_dir / f"browser-08c-error-zh-{design}.png"))


def check_chinese_settings(page: Any, artifacts_dir: Path, design: str) -> None:
    words = chinese("main.json")["grokImagine"]
    settings = chinese("settings.json")
    dialog = frontend.open_settings(page, "Grok Imagine")
    dialog.get_by_text(settings["GrokImagine_ApiKey"]["name"], exact=True).wait_for()
    dialog.get_by_text(settings["GrokImagine_DailyCreditLimit"]["name"], exact=True).wait_for()
    save, remove = (dialog.get_by_test_id(f"grok-imagine-key-{b}") for b in ("save", "remove"))
    frontend.expect(save).to_have_accessible_name(words["keyEntry"]["save"])
    frontend.expect(remove).to_have_accessible_name(words["keyEntry"]["remove"])
    limit_save = dialog.get_by_test_id("grok-imagine-limit-save")
    frontend.expect(limit_save).to_have_accessible_name(words["limitEntry"]["save"])
    status = dialog.get_by_test_id("grok-imagine-key-status")
    page.wait_for_function(
        "([el, checking]) => el.textContent && el.textContent !== checking",
        arg=[status.element_handle(), words["keyEntry"]["checking"]],
    )
    assert re.search(r"[\u4e00-\u9fff]", status.inner_text()), status.inner_text()
    for test_id in ("grok-imagine-key-status", "grok-imagine-limit-status"):
        shown = dialog.get_by_test_id(test_id).inner_text()
        assert english_words(shown) == [], shown
    page.screenshot(path=str(artifacts_dir / f"browser-09-settings-zh-{design}.png"))
    frontend.close_dialogs(page)


# -- nothing deprecated ---------------------------------------------------------------------------


def test_nothing_of_ours_is_deprecated(
    open_page: Callable[..., Any], browser_comfyui: ComfyUIServer
) -> None:
    """Our extension and our V1 nodes draw no deprecation warning, in the browser or the server
    log (the browser ComfyUI has loaded the extension and run the nodes by now)."""
    page = open_page(browser_comfyui)
    frontend.clear_graph(page)
    for node_type in GROK_NODES:
        frontend.add_node(page, node_type, 60, 130)
    page.wait_for_timeout(500)
    ours = [
        text
        for text in page.console.deprecations()
        if "grok" in text.lower() or "GrokImagine" in text
    ]
    assert ours == [], ours
    assert [t for t in page.console.from_url(PACK_WEB_URL) if "deprecat" in t.lower()] == []
    log = browser_comfyui.all_logs()
    assert [line for line in log.splitlines() if re.search(r"deprecat", line, re.I)] == []
