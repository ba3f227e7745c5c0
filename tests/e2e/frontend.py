"""ComfyUI's frontend driven the way a user drives it, the same on every frontend we test (1.27
of 2025, 1.49 and 1.58 of 2026), in either node design (the classic canvas, or Modern Node Design
where the frontend offers it).

Things are found by role, label, ``data-testid`` or the app's own JS API (``window.app``:
``app.graph``, ``app.extensionManager.command`` / ``.setting`` / ``.workflow``), never by CSS
class names, which each frontend generation renames. Shared by every browser test: open the app
(closing the first-run window once it has really opened), add nodes, search nodes, change
settings, open the Settings dialog, read toasts, watch the console.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Page, expect

UI_TIMEOUT_MS = 60_000
PACK_WEB_URL = "/extensions/ComfyUI-Grok-Imagine/"  # where ComfyUI serves the pack's scripts
MODERN_DESIGN = "Comfy.VueNodes.Enabled"  # Settings > Comfy > Nodes 2.0
VIEWPORT = {"width": 1400, "height": 900}

# The app is usable: Vue mounted, the canvas and the extension manager exist, the graph is set
# up. Frontends that have ``app.isGraphReady`` log an error when ``app.graph`` is read earlier,
# so it is asked first.
APP_READY = """() => {
    const app = window.app;
    if (!app || !app.vueAppReady || !app.canvas || !app.extensionManager) return false;
    return 'isGraphReady' in app ? app.isGraphReady : !!app.graph;
}"""


@dataclass
class Console:
    """The page's console warnings and errors, with where they came from."""

    messages: list[tuple[str, str, str]] = field(default_factory=list)  # (type, text, url)

    def record(self, message: Any) -> None:
        if message.type in ("warning", "error"):
            url = (message.location or {}).get("url", "")
            self.messages.append((message.type, message.text, url))

    def deprecations(self) -> list[str]:
        return [text for _, text, _ in self.messages if re.search(r"deprecat", text, re.I)]

    def from_url(self, part: str) -> list[str]:
        return [text for _, text, url in self.messages if part in url]

    def from_pack(self) -> list[str]:
        """Warnings and errors of the pack's scripts, or naming the pack."""
        return [
            f"{kind}: {text} ({url})"
            for kind, text, url in self.messages
            if PACK_WEB_URL in url or re.search(r"grok", text, re.I)
        ]


def watch_console(page: Page) -> Console:
    console = Console()
    page.on("console", console.record)
    return console


# -- opening the app ------------------------------------------------------------------------------


def first_visit(server: Any) -> bool:
    """Whether the frontend will open its first-run template browser on the next page load.

    Both generations do it exactly once per user: when ``Comfy.TutorialCompleted`` is not yet
    set they set it, load a blank workflow and run ``Comfy.BrowseTemplates``, some time after
    the page has loaded (after network idle on the newer one).
    """
    return not server.get_json("/api/settings").get("Comfy.TutorialCompleted")


def open_app(page: Page, server: Any) -> None:
    """Load ComfyUI and wait until it is usable, first-run window closed if it was due."""
    expect_first_run = first_visit(server)
    page.goto(server.url, wait_until="domcontentloaded")
    page.wait_for_function(APP_READY)
    if expect_first_run:
        dialogs(page).first.wait_for(state="visible")
        close_dialogs(page)


def dialogs(page: Page) -> Any:
    """The open dialogs (templates, settings, prompts, node search, errors)."""
    return page.get_by_role("dialog")


def close_dialogs(page: Page) -> None:
    """Close every open dialog the way a user does (Escape), waiting until each has gone."""
    for _ in range(5):
        count = dialogs(page).count()
        if count == 0:
            return
        page.keyboard.press("Escape")
        expect(dialogs(page)).to_have_count(count - 1)
    expect(dialogs(page)).to_have_count(0)


def frontend_version(page: Page) -> str:
    return str(page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || 'unknown'"))


# -- commands, settings, workflow ------------------------------------------------------------------


def run_command(page: Page, command: str) -> None:
    """Start a frontend command without waiting for it (some settle only when a dialog closes)."""
    page.evaluate("(id) => { window.app.extensionManager.command.execute(id); }", command)


def get_setting(page: Page, setting_id: str) -> Any:
    return page.evaluate("(id) => window.app.extensionManager.setting.get(id)", setting_id)


def set_setting(page: Page, setting_id: str, value: Any) -> None:
    page.evaluate(
        "async ([id, value]) => { await window.app.extensionManager.setting.set(id, value); }",
        [setting_id, value],
    )


def set_node_design(page: Page, design: str) -> None:
    """Nodes drawn on the canvas ("classic") or as DOM elements ("modern", Nodes 2.0). The choice
    is a user setting the server keeps, so it is set for every page a test opens."""
    modern = design == "modern"
    if bool(get_setting(page, MODERN_DESIGN)) != modern:
        set_setting(page, MODERN_DESIGN, modern)
    page.wait_for_function("(on) => !!window.LiteGraph.vueNodesMode === on", arg=modern)


def node_design(page: Page) -> str:
    return "modern" if page.evaluate("() => window.LiteGraph.vueNodesMode === true") else "classic"


def note_graph_changed(page: Page) -> None:
    """Tell the workflow's change tracker about nodes added from code (as a user edit would).

    ``captureCanvasState`` on frontends that have it; ``checkState`` (deprecated there) on the
    older ones.
    """
    page.evaluate(
        """() => {
            const tracker = window.app.extensionManager.workflow.activeWorkflow?.changeTracker;
            if (!tracker) return;
            if (typeof tracker.captureCanvasState === 'function') tracker.captureCanvasState();
            else tracker.checkState();
        }"""
    )


def clear_graph(page: Page) -> None:
    page.evaluate("() => window.app.graph.clear()")


def add_node(page: Page, node_type: str, x: float, y: float) -> int:
    """A node of ``node_type`` at canvas position (x, y), through LiteGraph; returns its id."""
    node_id = page.evaluate(
        """([type, x, y]) => {
            const node = window.LiteGraph.createNode(type);
            if (!node) throw new Error(`no node type ${type}`);
            node.pos = [x, y];
            window.app.graph.add(node);
            return node.id;
        }""",
        [node_type, x, y],
    )
    note_graph_changed(page)
    return int(node_id)


IMAGE_COUNT = """(id) => {
    const node = window.app.graph.getNodeById(id);
    const output = (window.app.nodeOutputs || {})[String(id)];
    return Math.max(((node || {}).imgs || []).length, ((output || {}).images || []).length);
}"""
"""How many images a node shows after a run: the classic canvas keeps them on the node
(``node.imgs``), the modern design only in the app's outputs (``app.nodeOutputs``)."""


def wait_for_images(page: Page, node_id: int, timeout_s: float) -> None:
    page.wait_for_function(
        f"(id) => ({IMAGE_COUNT})(id) > 0", arg=node_id, timeout=timeout_s * 1000
    )


def node_types(page: Page) -> list[str]:
    return sorted(page.evaluate("() => window.app.graph.nodes.map(n => n.type)"))


def reset_view(page: Page) -> None:
    """Canvas at scale 1, origin top left, so screenshots crop the same on every frontend."""
    page.evaluate(
        """() => {
            const canvas = window.app.canvas;
            canvas.ds.offset = [0, 0];
            canvas.ds.scale = 1;
            window.app.graph.setDirtyCanvas(true, true);
        }"""
    )


def canvas_clip(page: Page, x: float, y: float, width: float, height: float) -> dict[str, float]:
    """A screenshot clip of the graph area from (x, y) in graph units, after ``reset_view``:
    the canvas sits at a different place on the page in each frontend generation."""
    left, top = page.evaluate(
        "() => { const r = window.app.canvas.canvas.getBoundingClientRect(); return [r.x, r.y]; }"
    )
    return {"x": left + x, "y": top + y, "width": width, "height": height}


# -- node search ----------------------------------------------------------------------------------


def search_box(page: Page) -> Any:
    """The node search's text box: the one visible combobox while the search is open (inside a
    dialog on newer frontends, a floating panel on older ones)."""
    return page.get_by_role("combobox").filter(visible=True).first


def search_nodes(page: Page, query: str, expected: list[str]) -> list[str]:
    """Type ``query`` into the node search; the result texts once all ``expected`` names show.

    Opened by its command (a double-click on the canvas lands on a node on some default
    graphs); the results are the search's options.
    """
    run_command(page, "Workspace.SearchBox.Toggle")
    box = search_box(page)
    box.wait_for()
    box.fill(query)
    page.wait_for_function(
        """(names) => {
            const texts = [...document.querySelectorAll('[role=option]')].map(o => o.textContent);
            return names.every(n => texts.some(t => t.includes(n)));
        }""",
        arg=expected,
    )
    options = page.get_by_role("option")
    return [options.nth(i).inner_text() for i in range(options.count())]


def close_search(page: Page) -> None:
    box = search_box(page)
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()


# -- settings dialog ------------------------------------------------------------------------------


def open_settings(page: Page, category: str) -> Any:
    """The Settings dialog (Ctrl+,) at ``category``; returns the dialog."""
    page.keyboard.press("Control+Comma")
    dialog = dialogs(page).first
    dialog.wait_for()
    dialog.get_by_text(category, exact=True).first.click()
    return dialog


# -- notifications --------------------------------------------------------------------------------


def toasts(page: Page) -> list[str]:
    """The texts of the notifications on screen (schema warnings, errors, saved, ...)."""
    alerts = page.get_by_role("alert")
    return [alerts.nth(i).inner_text() for i in range(alerts.count())]


def visible_text(page: Page, text: str) -> bool:
    locator = page.get_by_text(text)
    return any(locator.nth(i).is_visible() for i in range(locator.count()))
