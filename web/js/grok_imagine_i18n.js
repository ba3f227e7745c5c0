// Grok Imagine: the pack's words in the UI language, from its locale files.
//
// ComfyUI serves every pack's locales/<lang>/*.json at /i18n (the frontend merges them into its
// own messages; an extension has no call to translate with them, so the pack reads the same
// route). The language is the frontend's setting Comfy.Locale as the page loaded ("zh-TW" falls
// back to "zh", then English). Fetched once per page; a failure leaves the English words if they
// came, or the message keys. No side effects on import.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { format, knows, say as sayIn, statusLines as linesIn } from "./grok_imagine_format.js";

let catalogs = null;
let words = [];
let nodeNames = [];

export function uiLocale() {
  const settings = app.extensionManager && app.extensionManager.setting;
  const locale = settings && typeof settings.get === "function" ? settings.get("Comfy.Locale") : null;
  return typeof locale === "string" && locale ? locale : "en";
}

// Every language's messages as ComfyUI serves them: {en: {grokImagine, nodeDefs, ...}, zh: ...}.
export function allCatalogs() {
  if (!catalogs) {
    catalogs = (async () =>
      typeof api.getCustomNodesI18n === "function"
        ? await api.getCustomNodesI18n()
        : await (await api.fetchApi("/i18n")).json())().catch(() => ({}));
  }
  return catalogs;
}

// The catalogs for the UI language, most specific first (exact, base language, English).
export async function localeChain() {
  const all = (await allCatalogs()) || {};
  const locale = uiLocale();
  const codes = [...new Set([locale, locale.split("-")[0], "en"])];
  return codes.map((code) => all[code]).filter(Boolean);
}

let loading = null;

// Once per page, from an extension's setup() or later: the language setting is known by then.
export function loadWords() {
  if (!loading) {
    loading = localeChain().then((chain) => {
      words = chain.map((catalog) => catalog.grokImagine || {});
      nodeNames = chain.map((catalog) => catalog.nodeDefs || {});
    });
  }
  return loading;
}

export function say(key, params = {}) {
  return sayIn(words, key, params);
}

export function render(part) {
  return format(words, part);
}

// A node type's name in the UI language (its display name), or `fallback`.
export function nodeName(nodeType, fallback) {
  for (const defs of nodeNames) {
    const name = defs[nodeType] && defs[nodeType].display_name;
    if (typeof name === "string" && name) return name;
  }
  return fallback;
}

// A route's refusal (nodes/server_routes.py: {error, message}) in the UI language: its message
// when the locale files know it, else its English line (an older server sends only that).
export async function refusal(body, httpStatus) {
  const english = body && typeof body.error === "string" ? body.error : `HTTP ${httpStatus}`;
  const message = body && body.message;
  if (!message || typeof message !== "object") return typeof message === "string" ? message : english;
  await loadWords();
  return knows(words, message.key) ? format(words, message) : english;
}

export function statusLines(status, title) {
  return linesIn(words, status, title);
}
