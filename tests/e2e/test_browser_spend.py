"""Knowing what you spend, in ComfyUI's real frontend: the cost badge, the panel, the limit.

Needs ``COMFYUI_DIR`` (see conftest) and Playwright with Debian's Chromium. The module has its own
ComfyUI (so its journal holds only this module's tasks) pointed at the session's sandbox, whose
create count is the proof that a refused run sent nothing and a Load Task run was free. Every test
runs in each node design the frontend offers (``design``: the classic canvas, Modern Node Design).
Screenshots go to the artifacts folder (``spend-*.png``); the README's come from them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.api_graphs import LOAD_TASK, TEXT_TO_IMAGE, UPSCALE
from e2e.comfyui_server import ComfyUIServer
from e2e.sandbox_view import WAIT_S, unique
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY

pytestmark = pytest.mark.e2e

frontend = pytest.importorskip("e2e.frontend", reason="Playwright for Python is not installed")
STATUS_WIDGET = "grok_imagine_status"  # the pack's status widget (web/js/grok_imagine_status.js)
PANEL_COMMAND = "Workspace.ToggleSidebarTab.grok-imagine"


@pytest.fixture(scope="module")
def spend_comfyui(comfyui_factory: Callable[..., ComfyUIServer], chromium: Any) -> ComfyUIServer:
    return comfyui_factory("comfyui-spend")


@pytest.fixture
def page(spend_comfyui: ComfyUIServer, open_page: Callable[..., Any], design: str) -> Iterator[Any]:
    try:
        yield open_page(spend_comfyui, design)  # usable, first-run window closed (e2e.frontend)
    finally:
        set_limit(spend_comfyui, None)


def shot(artifacts_dir: Path, name: str, design: str) -> Path:
    """``panel.png`` in the classic design, ``panel-modern.png`` in the modern one."""
    stem, suffix = name.rsplit(".", 1)
    return artifacts_dir / (name if design == "classic" else f"{stem}-{design}.{suffix}")


def set_limit(server: ComfyUIServer, credits: int | None) -> dict[str, Any]:
    status, body = server.request("POST", "/grok_imagine/limit", {"limit": credits})
    assert status == 200, body
    return body


def set_limit_in_settings(page: Any, credits: int, shot: Path) -> None:
    """Settings > Grok Imagine > Daily credit limit, typed and saved like a user does."""
    dialog = frontend.open_settings(page, "Grok Imagine")
    field = dialog.get_by_test_id("grok-imagine-limit-input")
    field.fill(str(credits))
    dialog.get_by_test_id("grok-imagine-limit-save").click()
    page.wait_for_function(
        "(text) => { const s = document.querySelector('[data-testid=grok-imagine-limit-status]');"
        " return s && s.textContent === text; }",
        arg=f"{credits} credits a day",
    )
    page.screenshot(path=str(shot))
    frontend.close_dialogs(page)


def tasks_page(server: ComfyUIServer) -> dict[str, Any]:
    return server.get_json("/grok_imagine/tasks?limit=5")


def build(page: Any, script: str, arg: Any = None) -> Any:
    """Run ``script`` (a JS function of ``(app, LiteGraph, make, arg)``) on a cleared graph."""
    return page.evaluate(
        """([script, arg]) => {
            const app = window.app;
            app.graph.clear();
            const make = (type, x, y) => {
                const node = window.LiteGraph.createNode(type);
                node.pos = [x, y];
                app.graph.add(node);
                return node;
            };
            const result = new Function('app', 'LiteGraph', 'make', 'arg', script)(
                app, window.LiteGraph, make, arg);
            app.canvas.ds.offset = [0, 0];
            app.canvas.ds.scale = 1;
            app.graph.setDirtyCanvas(true, true);
            return result;
        }""",
        [script, arg],
    )


# Where a node's badges are, in each design: the classic canvas draws them (node.drawBadges) above
# the title bar, the texts' baselines above its top edge; the modern design renders them as
# elements in the node's element (data-node-id), apart from its title (data-testid=node-title).
BADGE_TEXTS = """(id) => {
    const node = window.app.graph.getNodeById(id);
    if (!node) return null;
    if (window.LiteGraph.vueNodesMode) {
        const root = document.querySelector(`[data-node-id="${id}"]`);
        const title = root && root.querySelector('[data-testid="node-title"]');
        if (!root || !title) return null;
        const t = title.getBoundingClientRect();
        return [...root.querySelectorAll('*')]
            .filter(e => e.children.length === 0 && e.textContent.trim() && e.offsetParent)
            .map(e => {
                const r = e.getBoundingClientRect();
                const apart = r.bottom <= t.top || r.top >= t.bottom
                    || r.right <= t.left || r.left >= t.right;
                return {text: e.textContent.trim(), clear: apart};
            });
    }
    const ctx = document.createElement('canvas').getContext('2d');
    const drawn = [];
    const fillText = ctx.fillText.bind(ctx);
    ctx.fillText = (text, x, y) => { drawn.push({text, y}); fillText(text, x, y); };
    node.drawBadges(ctx);
    const top = -window.LiteGraph.NODE_TITLE_HEIGHT;
    return drawn.map(d => ({text: d.text, clear: d.y < top}));
}"""


def badge_texts(page: Any, node_id: int) -> list[dict[str, Any]]:
    """The texts shown as the node's badges (or anywhere in a modern node), and whether each is
    clear of the title."""
    return page.evaluate(BADGE_TEXTS, node_id) or []


def badge(page: Any, node_id: int, expected: str) -> None:
    """The node's cost badge says ``expected``, and the page shows it, clear of the title."""
    page.wait_for_function(
        f"""([id, expected]) => {{
            const node = window.app.graph.getNodeById(id);
            window.app.graph.setDirtyCanvas(true, true);
            if (!node || node.grokImagineCost !== expected) return false;
            return ({BADGE_TEXTS})(id)?.some(b => b.text === expected);
        }}""",
        arg=[node_id, expected],
        timeout=10_000,
    )
    shown = [b for b in badge_texts(page, node_id) if b["text"] == expected]
    assert shown and all(b["clear"] for b in shown), f"the badge {expected!r} covers the title"


def queue(page: Any) -> None:
    page.evaluate("() => window.app.queuePrompt(0, 1)")


def status_text(page: Any, node_id: int) -> str:
    """The node's status as the page shows it (the widget's element, visible) and as the widget
    says it (its value): both must agree."""
    value, shown = page.evaluate(
        """([id, name]) => {
            const node = window.app.graph.getNodeById(id);
            const widget = node && (node.widgets || []).find(w => w.name === name);
            const element = document.querySelector(
                `[data-testid="grok-imagine-status"][data-grok-imagine-node="${id}"]`);
            const visible = element && element.offsetParent !== null
                && element.getBoundingClientRect().height > 0;
            return [widget ? String(widget.value ?? '') : '', visible ? element.innerText : ''];
        }""",
        [node_id, STATUS_WIDGET],
    )
    assert shown.strip() == value.strip(), (shown, value)
    return value


def wait_for_images(page: Any, node_id: int) -> None:
    frontend.wait_for_images(page, node_id, WAIT_S)


def open_panel(page: Any) -> Any:
    panel = page.get_by_test_id("grok-imagine-panel")
    if not panel.is_visible():
        frontend.run_command(page, PANEL_COMMAND)
    panel.wait_for()
    return panel


# -- the badge ------------------------------------------------------------------------------------


def test_the_cost_badge_follows_the_inputs(page: Any, artifacts_dir: Path, design: str) -> None:
    ids = build(
        page,
        """
        const t2i = make(arg[0], 60, 130);
        const up = make(arg[1], 560, 130);
        const typed = make(arg[1], 560, 330);
        const load = make(arg[2], 560, 500);
        return {t2i: t2i.id, up: up.id, typed: typed.id, load: load.id};
        """,
        [TEXT_TO_IMAGE, UPSCALE, LOAD_TASK],
    )
    badge(page, ids["t2i"], "5 credits")
    badge(page, ids["up"], "12 credits per task id")  # the longest badge, clear of the title
    badge(page, ids["typed"], "12 credits per task id")
    badge(page, ids["load"], "free")
    for tasks, expected in (
        (3, "15 credits"),
        (8, "40 credits"),
        (1, "5 credits"),
        (2, "10 credits"),
    ):
        page.evaluate(
            """([id, n]) => {
                window.app.graph.getNodeById(id).widgets.find(w => w.name === 'parallel_tasks')
                    .value = n;
            }""",
            [ids["t2i"], tasks],
        )
        badge(page, ids["t2i"], expected)
    page.evaluate(
        """([id]) => {
            window.app.graph.getNodeById(id).widgets.find(w => w.name === 'task_id').value =
                'abc123kie, def456kie\\nabc123kie';
        }""",
        [ids["typed"]],
    )
    badge(page, ids["typed"], "24 credits")  # two distinct ids
    page.evaluate(
        """([from, to]) => {
            const a = window.app.graph.getNodeById(from), b = window.app.graph.getNodeById(to);
            const slot = a.outputs.findIndex(o => o.name === 'task_id');
            a.connect(slot, b, b.inputs.findIndex(i => i.name === 'task_id'));
        }""",
        [ids["t2i"], ids["up"]],
    )
    badge(page, ids["up"], "12 credits per task id")
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts_dir / f"spend-01-cost-badges-{design}.png"))
    page.screenshot(
        path=str(shot(artifacts_dir, "cost_badges.png", design)),
        clip={"x": 40, "y": 100, "width": 900, "height": 560},
    )


# -- the panel ------------------------------------------------------------------------------------


def test_the_panel_lists_a_task_right_after_it_ran_and_loads_it_free(
    page: Any, spend_comfyui: ComfyUIServer, e2e_sandbox: Any, artifacts_dir: Path, design: str
) -> None:
    prompt = unique("A lighthouse keeper's cat on a windowsill, watercolour")
    ids = build(
        page,
        """
        const t2i = make(arg[0], 60, 130);
        t2i.widgets.find(w => w.name === 'prompt').value = arg[1];
        const preview = make('PreviewImage', 520, 130);
        t2i.connect(0, preview, 0);
        return {t2i: t2i.id, preview: preview.id};
        """,
        [TEXT_TO_IMAGE, prompt],
    )
    panel = open_panel(page)
    known = set(e2e_sandbox.task_ids())
    queue(page)
    wait_for_images(page, ids["preview"])
    (task_id,) = set(e2e_sandbox.task_ids()) - known
    row = panel.locator(f"[data-testid=grok-imagine-task-row][data-task-id='{task_id}']")
    row.wait_for(timeout=15_000)  # the panel refreshed by itself when the run ended
    assert row.locator("img").first.is_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=row.locator("img").first.element_handle())  # fmt: skip
    text = row.inner_text()
    assert prompt[:30] in text and "succeeded" in text and "5 cr" in text and task_id in text
    assert "Today: " in panel.get_by_test_id("grok-imagine-totals").inner_text()
    assert f"task {task_id}" in status_text(page, ids["t2i"])  # the run's status stays
    assert "new (5 credits charged)" in status_text(page, ids["t2i"])
    page.screenshot(path=str(artifacts_dir / f"spend-02-panel-{design}.png"))
    page.screenshot(
        path=str(shot(artifacts_dir, "panel.png", design)),
        clip={"x": 0, "y": 0, "width": 900, "height": 620},
    )

    with page.expect_popup() as opened:
        row.get_by_role("button", name=f"Open the kept images of {task_id}").click()
    tab = opened.value
    tab.wait_for_function(
        "() => document.images.length > 0"
        " && [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    )
    kept = [f for f in (spend_comfyui.output_dir / "grok_imagine" / task_id).iterdir()
            if not f.name.startswith(".")]  # fmt: skip
    assert tab.evaluate("() => document.images.length") == len(kept) > 0
    tab.screenshot(path=str(artifacts_dir / "spend-02b-kept-images.png"))
    tab.close()

    row.get_by_role("button", name=f"Add a Grok Load Task node for {task_id}").click()
    loaded = page.evaluate(
        """([type, id]) => {
            const app = window.app;
            const node = app.graph.nodes.find(n => n.type === type);
            for (const other of [...app.graph.nodes]) {  // keep only Load Task and its preview
                const wired = (other.inputs || []).some(
                    (_, slot) => other.getInputNode(slot) === node);
                if (other !== node && !wired) app.graph.remove(other);
            }
            return {
                id: node.id,
                task: node.widgets.find(w => w.name === 'task_id').value,
                preview: app.graph.nodes.find(n => n !== node).id,
            };
        }""",
        [LOAD_TASK, task_id],
    )
    assert loaded["task"] == task_id
    badge(page, loaded["id"], "free")
    creates = e2e_sandbox.create_requests
    spent = tasks_page(spend_comfyui)["spent_today"]
    queue(page)
    wait_for_images(page, loaded["preview"])
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / f"spend-03-load-task-from-panel-{design}.png"))
    assert e2e_sandbox.create_requests == creates  # loading it was free
    assert tasks_page(spend_comfyui)["spent_today"] == spent
    assert "no charge" in status_text(page, loaded["id"])


def lost_create(server: ComfyUIServer, sandbox: Any) -> tuple[int, str]:
    """A create whose answer was lost, in this ComfyUI's own journal (written by a runner in
    the test's process, as a second ComfyUI or the CLI would): the sandbox took the create and
    made the task, the client gave up reading its answer. -> (journal row, the task's id)."""
    api, journal = public_api(), submodule("journal")
    settings = api.Settings(api_key=TEST_KEY, base_url=sandbox.base_url, read_timeout=0.3)
    runner = journal.TaskRunner(
        lambda: api.GrokClient(settings),
        journal=journal.Journal(server.user_dir / "grok_imagine" / "journal.sqlite"),
        files=journal.FileStore(server.output_dir / "grok_imagine"),
        api_base=sandbox.base_url,
    )
    known = set(sandbox.task_ids())
    sandbox.faults.create_response_delay = 1.0
    try:
        with pytest.raises(api.errors.UncertainCreateError) as caught:
            runner.text_to_image(unique("A heron in the reeds at dusk"), seed=1)
        deadline = time.monotonic() + WAIT_S
        while not set(sandbox.task_ids()) - known:
            assert time.monotonic() < deadline, "the sandbox never made the task"
            time.sleep(0.05)
    finally:
        sandbox.faults.create_response_delay = 0.0
        runner.journal.close()
    (task_id,) = set(sandbox.task_ids()) - known
    return caught.value.entry.id, task_id


def test_an_uncertain_row_is_resolved_in_the_panel_with_the_dashboard_task_id(
    page: Any, spend_comfyui: ComfyUIServer, e2e_sandbox: Any, artifacts_dir: Path, design: str
) -> None:
    entry_id, task_id = lost_create(spend_comfyui, e2e_sandbox)
    build(page, "return null;")  # an empty canvas behind the panel
    panel = open_panel(page)
    panel.get_by_test_id("grok-imagine-refresh").click()
    row = panel.locator(f"[data-testid=grok-imagine-task-row][data-entry='{entry_id}']")
    row.wait_for()
    assert row.get_attribute("data-state") == "uncertain"
    assert "may have been charged" in row.inner_text()
    creates = e2e_sandbox.create_requests
    row.get_by_role("textbox", name=f"Task id for the lost create of row {entry_id}").fill(task_id)
    page.screenshot(path=str(artifacts_dir / f"spend-06-resolve-uncertain-{design}.png"))
    page.screenshot(
        path=str(shot(artifacts_dir, "panel_resolve.png", design)),
        clip={"x": 0, "y": 0, "width": 760, "height": 460},
    )
    row.get_by_role("button", name="Fetch").click()
    done = panel.locator(
        f"[data-testid=grok-imagine-task-row][data-entry='{entry_id}'][data-state=succeeded]"
    )
    done.wait_for(timeout=WAIT_S * 1000)
    assert done.get_attribute("data-task-id") == task_id
    thumbnail = done.locator("img").first
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=thumbnail.element_handle())  # fmt: skip
    page.screenshot(path=str(artifacts_dir / f"spend-07-resolved-{design}.png"))
    assert e2e_sandbox.create_requests == creates  # fetched and kept, free
    kept = list((spend_comfyui.output_dir / "grok_imagine" / task_id).iterdir())
    assert kept, "the resolved task's images were not kept"


# -- the limit ------------------------------------------------------------------------------------


def test_the_daily_limit_refuses_a_run_whole_with_the_reason_on_the_node(
    page: Any, spend_comfyui: ComfyUIServer, e2e_sandbox: Any, artifacts_dir: Path, design: str
) -> None:
    spent = tasks_page(spend_comfyui)["spent_today"]
    limit = spent + 7  # room for one task, not for the node's two
    set_limit_in_settings(page, limit, shot(artifacts_dir, "spend-04-limit-setting.png", design))
    stored = json.loads((spend_comfyui.user_dir / "grok_imagine" / "settings.json").read_text())
    assert stored == {"daily_credit_limit": limit}  # on the server, beside the key file
    ids = build(
        page,
        """
        const t2i = make(arg[0], 60, 130);
        t2i.widgets.find(w => w.name === 'prompt').value = arg[1];
        t2i.widgets.find(w => w.name === 'parallel_tasks').value = 2;
        const preview = make('PreviewImage', 520, 130);
        t2i.connect(0, preview, 0);
        return {t2i: t2i.id};
        """,
        [TEXT_TO_IMAGE, unique("A paper boat on a puddle")],
    )
    badge(page, ids["t2i"], "10 credits")
    creates = e2e_sandbox.create_requests
    queue(page)
    expected = f"spent {spent} of {limit} credits today, this run needs 10 more"
    page.wait_for_function(
        """([id, name, expected]) => {
            const node = window.app.graph.getNodeById(id);
            const widget = (node.widgets || []).find(w => w.name === name);
            return widget && String(widget.value ?? '').includes(expected);
        }""",
        arg=[ids["t2i"], STATUS_WIDGET, expected],
        timeout=WAIT_S * 1000,
    )
    page.wait_for_timeout(700)
    page.screenshot(path=str(artifacts_dir / f"spend-05-limit-refused-{design}.png"))
    page.screenshot(
        path=str(shot(artifacts_dir, "limit_refused.png", design)),
        clip={"x": 0, "y": 60, "width": 1400, "height": 590},
    )
    assert e2e_sandbox.create_requests == creates
    text = status_text(page, ids["t2i"])  # ">" is drawn as a look-alike (no markup on the node)
    assert "Grok Imagine" in text and "Daily credit limit, or wait until tomorrow" in text, text
    assert text.count("not sent") == 2, text
    assert tasks_page(spend_comfyui)["spent_today"] == spent
