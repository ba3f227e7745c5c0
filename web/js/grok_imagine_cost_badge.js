// Grok Imagine: a cost badge on each Grok node, following its inputs live.
//
// Text-to-Image: credits per task x parallel_tasks; Upscale: credits per task id x the number of
// ids typed (wired: "per task id"); Load Task: free. The prices are not written here: the server
// serves each node's declaration (GET /grok_imagine/prices, credits from api/models.py), so the
// badge can never disagree with what the runner charges.
//
// The badge is one of the node's own badges (`node.badges`, the frontend's badge mechanism): the
// classic canvas draws it with the node's other badges above its title bar, the modern node design
// (Nodes 2.0) renders it with them in the node. The entry is a function, which both designs call
// to get the badge, so its text follows the inputs. A frontend without node badges shows none.
// `node.grokImagineCost` holds the badge text (what tests and other extensions read).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { loadWords, say } from "./grok_imagine_i18n.js";

const PRICES_ROUTE = "/grok_imagine/prices";
const ID_SEPARATORS = /[\s,;]+/; // as api/validation.py splits task ids
const COLORS = { paid: "#8a5a00", free: "#2e7d32", text: "#ffffff" };

let prices = null;

function wired(node, name) {
  const slot = (node.inputs || []).findIndex((input) => input.name === name);
  if (slot < 0) return false;
  if (typeof node.isInputConnected === "function") return node.isInputConnected(slot);
  return node.inputs[slot].link != null;
}

function countedValue(node, name) {
  if (wired(node, name)) return { wired: true };
  const widget = (node.widgets || []).find((w) => w.name === name);
  return { wired: false, value: widget ? widget.value : undefined };
}

function credits(count) {
  return say("badge.credits", { count });
}

export function costText(node, cost) {
  if (!cost.credits) return say("badge.free");
  if (!cost.counted_by) return credits(cost.credits);
  const perUnit = () => say(`badge.per.${cost.per}`, { price: credits(cost.credits) });
  const counted = countedValue(node, cost.counted_by);
  if (counted.wired) return perUnit();
  let count;
  if (typeof counted.value === "string") {
    count = new Set(counted.value.split(ID_SEPARATORS).filter(Boolean)).size;
    if (count === 0) return perUnit();
  } else {
    count = Math.max(1, Math.round(Number(counted.value) || 1));
  }
  return credits(cost.credits * count);
}

// The modern node design re-reads a node's badges when something reactive they read changes:
// a widget's value does, but an input being wired does not on every frontend (1.4x). So the badge
// also reads a counter on the frontend's workspace store (a reactive object extensions get as
// app.extensionManager), which a connection change bumps. Elsewhere it is an inert number.
const TICK = "grokImagineBadgeTick";

function watchedTick() {
  const store = app.extensionManager;
  return store && typeof store === "object" ? store[TICK] : undefined;
}

function announce() {
  const store = app.extensionManager;
  if (store && typeof store === "object") store[TICK] = (store[TICK] || 0) + 1;
}

function attach(node, cost) {
  const Badge = window.LGraphBadge;
  if (typeof Badge !== "function" || !Array.isArray(node.badges)) return;
  const badge = new Badge({
    text: "",
    fgColor: COLORS.text,
    bgColor: cost.credits ? COLORS.paid : COLORS.free,
  });
  const current = () => {
    watchedTick();
    badge.text = costText(node, cost);
    node.grokImagineCost = badge.text;
    return badge;
  };
  current();
  node.badges.push(current);
  const onConnectionsChange = node.onConnectionsChange;
  node.onConnectionsChange = function (...args) {
    const result = onConnectionsChange ? onConnectionsChange.apply(this, args) : undefined;
    announce();
    return result;
  };
}

async function loadPrices() {
  const response = await api.fetchApi(PRICES_ROUTE, { cache: "no-store" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return (await response.json()).nodes || {};
}

function costOf(node) {
  return prices && prices[node.comfyClass || node.type];
}

app.registerExtension({
  name: "GrokImagine.CostBadge",
  async setup() {
    let loaded;
    try {
      [loaded] = await Promise.all([loadPrices(), loadWords()]);
    } catch (error) {
      return; // no prices, no badges: the nodes still work, and say their cost when they run
    }
    prices = loaded;
    const graph = "isGraphReady" in app && !app.isGraphReady ? null : app.rootGraph || app.graph;
    for (const node of graph ? graph.nodes : []) {
      const cost = costOf(node);
      if (cost && node.grokImagineCost === undefined) attach(node, cost);
    }
    if (graph) graph.setDirtyCanvas(true, true);
  },
  nodeCreated(node) {
    // Nodes made before the prices arrive get their badge in setup() above.
    const cost = costOf(node);
    if (cost) attach(node, cost);
  },
});
