// Grok Imagine: each Grok node's status, in the UI language, kept on the node after the run.
//
// A running node sends its status as message keys and facts (websocket message
// "grok_imagine_status", see nodes/status_board.py): per task its state, running time, task id,
// what it cost, and why it failed or was refused. This extension words it from the locale files
// and shows it in a widget of its own under the node's inputs, a DOM element, so it shows in the
// classic canvas and in the modern node design alike, and stays until the node runs again (the
// frontend's own progress text is cleared when a run ends on newer frontends). The widget is never
// saved in a workflow nor sent with a prompt. Its `value` is the text shown (what tests read).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { loadWords, nodeName, say, statusLines } from "./grok_imagine_i18n.js";

const EVENT = "grok_imagine_status";
const WIDGET = "grok_imagine_status";
const LINE_HEIGHT = 16;
const PADDING = 12;
const MAX_HEIGHT = 400;
const MARGIN = 6; // the frontend leaves it around a DOM widget, above and below
const MIN_MEASURED_WIDTH = 120; // narrower, the element is not laid out at the node's width yet


function rootGraph() {
  if ("isGraphReady" in app && !app.isGraphReady) return null; // reading it early is an error
  return app.rootGraph || app.graph;
}

// A node by its execution id ("12", or "5:12" inside subgraph node 5).
function findNode(executionId) {
  let graph = rootGraph();
  let node = null;
  for (const id of String(executionId).split(":")) {
    node = graph && typeof graph.getNodeById === "function" ? graph.getNodeById(id) : null;
    if (!node) return null;
    graph = node.subgraph;
  }
  return node;
}

function makeElement(node) {
  const element = document.createElement("div");
  element.className = "grok-imagine-status";
  element.setAttribute("data-testid", "grok-imagine-status");
  element.setAttribute("data-grok-imagine-node", String(node.id));
  element.setAttribute("aria-label", say("status.name"));
  element.style.cssText =
    "box-sizing:border-box;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;" +
    "font-size:11px;line-height:16px;padding:6px 8px;border-radius:6px;" +
    "color:var(--input-text, var(--fg-color, inherit));" +
    "background:var(--comfy-input-bg, rgba(127,127,127,0.12));";
  return element;
}

function statusWidget(node) {
  const existing = (node.widgets || []).find((w) => w.name === WIDGET);
  if (existing) return existing;
  if (typeof node.addDOMWidget !== "function") return null;
  const element = makeElement(node);
  const state = { text: "", height: LINE_HEIGHT + PADDING };
  const widget = node.addDOMWidget(WIDGET, WIDGET, element, {
    serialize: false,
    hideOnZoom: false,
    margin: MARGIN,
    getValue: () => state.text,
    setValue: () => {}, // shown, never edited
    getMinHeight: () => state.height,
    getMaxHeight: () => Math.max(state.height, MAX_HEIGHT),
  });
  widget.serialize = false;
  widget.grokImagine = state;
  return widget;
}

// The height the lines take at the widget's width (wrapped), never the element's own height,
// which the frontend stretches to the room the node gives it.
function contentHeight(element) {
  if (!element.isConnected || element.clientWidth < MIN_MEASURED_WIDTH) return 0; // not laid out
  let height = PADDING;
  for (const line of element.children) height += line.offsetHeight || LINE_HEIGHT;
  return height;
}

// Grow the node so the whole status shows (never shrink what the user sized).
function fit(node, widget) {
  const state = widget.grokImagine;
  const lines = state.text.split("\n").length;
  const content = Math.max(lines * LINE_HEIGHT + PADDING, contentHeight(widget.element));
  state.height = Math.min(MAX_HEIGHT, content + 2 * MARGIN);
  if (typeof node.computeSize !== "function" || typeof node.setSize !== "function") return;
  const needed = node.computeSize();
  if (node.size[1] < needed[1]) node.setSize([node.size[0], needed[1]]);
}

function show(node, status) {
  const widget = statusWidget(node);
  if (!widget) return;
  const lines = statusLines(status, nodeName(status.nodeType, node.title));
  const text = lines.join("\n");
  if (text === widget.grokImagine.text) return;
  widget.grokImagine.text = text;
  const rows = lines.map((line) => Object.assign(document.createElement("div"), { textContent: line }));
  widget.element.replaceChildren(...rows);
  fit(node, widget);
  requestAnimationFrame(() => fit(node, widget)); // once laid out, the wrapped height is known
  if (typeof node.setDirtyCanvas === "function") node.setDirtyCanvas(true, true);
}

async function onStatus(event) {
  const status = event.detail;
  if (!status || status.node === undefined) return;
  await loadWords();
  const node = findNode(status.node);
  if (node) show(node, status);
}

// Registered on import, before the frontend opens its websocket: a message it has no listener
// for is an error there.
api.addEventListener(EVENT, onStatus);

app.registerExtension({ name: "GrokImagine.Status" });
