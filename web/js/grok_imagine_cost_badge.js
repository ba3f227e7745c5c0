// Grok Imagine: a cost badge on each Grok node, following its inputs live.
//
// Text-to-Image: credits per task x parallel_tasks; Upscale: credits per task id x the number of
// ids typed (wired: "per id"); Load Task: free. The prices are not written here: the server
// serves each node's declaration (GET /grok_imagine/prices, credits from api/models.py), so the
// badge can never disagree with what the runner charges. ComfyUI's own price badge is reserved
// for Comfy-billed API nodes, so this extension draws its own in the node's title bar.
// `node.grokImagineCost` holds the badge text (what tests and other extensions read).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const PRICES_ROUTE = "/grok_imagine/prices";
const ID_SEPARATORS = /[\s,;]+/; // as api/validation.py splits task ids

let prices = null;

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function countedValue(node, name) {
  const input = (node.inputs || []).find((slot) => slot.name === name);
  if (input && input.link != null) return { wired: true };
  const widget = (node.widgets || []).find((w) => w.name === name);
  return { wired: false, value: widget ? widget.value : undefined };
}

export function costText(node, cost) {
  if (!cost.credits) return "free";
  if (!cost.counted_by) return plural(cost.credits, "credit");
  const counted = countedValue(node, cost.counted_by);
  if (counted.wired) return `${plural(cost.credits, "credit")} per ${cost.per}`;
  let count;
  if (typeof counted.value === "string") {
    count = new Set(counted.value.split(ID_SEPARATORS).filter(Boolean)).size;
    if (count === 0) return `${plural(cost.credits, "credit")} per ${cost.per}`;
  } else {
    count = Math.max(1, Math.round(Number(counted.value) || 1));
  }
  return plural(cost.credits * count, "credit");
}

const BADGE_FONT = "bold 11px sans-serif";
const BADGE_PADDING = 12; // inside the badge, both sides together
const BADGE_MARGIN = 6; // between the badge and the node's right edge
const TITLE_GAP = 8; // between the end of the title and the badge

let measuring = null;

function titleHeight() {
  return (window.LiteGraph && window.LiteGraph.NODE_TITLE_HEIGHT) || 30;
}

function textWidth(font, text) {
  measuring = measuring || document.createElement("canvas").getContext("2d");
  measuring.font = font;
  return measuring.measureText(text).width;
}

// The node's width if its title and badge are both to be read: the title is drawn from about one
// title height in (after the collapse dot), in the canvas's title font.
function widthNeeded(node, text) {
  const title = typeof node.getTitle === "function" ? node.getTitle() : node.title;
  const font =
    node.titleFontStyle ||
    (app.canvas && app.canvas.title_text_font) ||
    `${(window.LiteGraph && window.LiteGraph.NODE_TEXT_SIZE) || 14}px Arial`;
  const badge = textWidth(BADGE_FONT, text) + BADGE_PADDING;
  return Math.ceil(titleHeight() + textWidth(font, title || "") + TITLE_GAP + badge + BADGE_MARGIN);
}

// Widen a node whose badge would cover its title ("API in One · Grok Upscale" with "12 credits
// per task id"), once per badge text and title; never narrows it.
function fit(node, text) {
  const key = `${text}\u0000${node.title}`;
  if (node.grokImagineBadgeFitted === key) return;
  node.grokImagineBadgeFitted = key;
  const needed = widthNeeded(node, text);
  if (node.size[0] >= needed) return;
  const size = [needed, node.size[1]];
  if (typeof node.setSize === "function") node.setSize(size);
  else node.size = size;
  if (node.graph) node.graph.setDirtyCanvas(true, true);
}

function drawBadge(node, ctx, text) {
  if (node.flags && node.flags.collapsed) return;
  fit(node, text);
  ctx.save();
  ctx.font = BADGE_FONT;
  const width = ctx.measureText(text).width + BADGE_PADDING;
  const height = 16;
  const x = node.size[0] - width - BADGE_MARGIN;
  const y = -titleHeight() + (titleHeight() - height) / 2;
  ctx.fillStyle = text === "free" ? "#2e7d32" : "#8a5a00";
  ctx.beginPath();
  if (ctx.roundRect) ctx.roundRect(x, y, width, height, 8);
  else ctx.rect(x, y, width, height);
  ctx.fill();
  ctx.fillStyle = "#ffffff";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, x + width / 2, y + height / 2 + 0.5);
  ctx.restore();
}

function attach(node, cost) {
  const update = () => {
    node.grokImagineCost = costText(node, cost);
    return node.grokImagineCost;
  };
  update();
  const draw = node.onDrawForeground;
  node.onDrawForeground = function (ctx, ...rest) {
    const result = draw ? draw.call(this, ctx, ...rest) : undefined;
    drawBadge(this, ctx, update());
    return result;
  };
}

async function loadPrices() {
  const response = await api.fetchApi(PRICES_ROUTE, { cache: "no-store" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return (await response.json()).nodes || {};
}

app.registerExtension({
  name: "GrokImagine.CostBadge",
  async setup() {
    try {
      prices = await loadPrices();
    } catch (error) {
      console.warn("Grok Imagine: node prices unavailable, no cost badges", error);
      return;
    }
    for (const node of app.graph ? app.graph.nodes : []) {
      const cost = prices[node.type];
      if (cost && node.grokImagineCost === undefined) attach(node, cost);
    }
    if (app.graph) app.graph.setDirtyCanvas(true, true);
  },
  nodeCreated(node) {
    // Nodes made before the prices arrive get their badge in setup() above.
    const cost = prices && prices[node.comfyClass || node.type];
    if (cost) attach(node, cost);
  },
});
