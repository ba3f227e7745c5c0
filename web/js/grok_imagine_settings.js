// Grok Imagine: the "API key" entry in ComfyUI's Settings dialog.
//
// The key is pasted here once and posted straight to the pack's server route, which stores it
// in a 0600 file in ComfyUI's user directory. The entry uses a custom render function and never
// calls the settings setter, so the key is never written to comfy.settings.json, a workflow or
// PNG metadata; after saving, the page only knows "set (…abcd)" or "not set".
//
// Words: the setting's name and tooltip are translated by the frontend from locales/*/settings.json;
// the entry's own words come from locales/*/main.json ("grokImagine.keyEntry"), as ComfyUI serves
// them at /i18n, in the UI language (Comfy.Locale). ENGLISH is the fallback and must equal
// locales/en/main.json (tests/test_locales.py checks it).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { controlClasses } from "./grok_imagine_controls.js";
import { localeChain, refusal } from "./grok_imagine_i18n.js";

const SETTING_ID = "GrokImagine.ApiKey";
const ROUTE = "/grok_imagine/key";
const ENV_VAR = "APIINONE_API_KEY";

/* english:begin */
const ENGLISH = {
  "settingName": "API in One key",
  "settingTooltip": "Your API in One key for the Grok Imagine nodes. It is stored on the ComfyUI server (grok_imagine/api_key in ComfyUI's user directory, owner-only) and never in settings, workflows or images. APIINONE_API_KEY in ComfyUI's environment takes precedence.",
  "checking": "checking…",
  "notSet": "not set",
  "set": "set{tail}",
  "setByEnv": "set by {envVar}{tail}",
  "setByEnvShadowing": "set by {envVar}{tail}; the saved key is not used while it is set",
  "unknown": "unknown ({reason})",
  "error": "error: {reason}",
  "placeholder": "paste key",
  "inputLabel": "Grok Imagine API key",
  "save": "Save",
  "remove": "Remove",
  "removeTitle": "Delete the saved key file",
  "saved": "API key saved.",
  "removed": "Saved API key removed.",
  "notSaved": "Grok Imagine: API key not saved",
  "pasteFirst": "Paste a key first (Remove deletes the saved one).",
  "unreachable": "Could not reach the ComfyUI server."
};
/* english:end */

let words = ENGLISH;

// The entry's words in the UI language as it is now (see grok_imagine_i18n.js): exact locale,
// then its language ("zh-TW" -> "zh"), then English; a failure leaves English.
async function loadWords() {
  const chain = await localeChain();
  const pick = (catalog) => (catalog.grokImagine && catalog.grokImagine.keyEntry) || {};
  words = Object.assign({}, ENGLISH, ...chain.slice().reverse().map(pick));
}

function say(key, values = {}) {
  const template = words[key] || ENGLISH[key] || key;
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

async function callRoute(options) {
  let response;
  try {
    response = await api.fetchApi(ROUTE, { cache: "no-store", ...options });
  } catch (error) {
    throw new Error(say("unreachable"));
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    throw new Error(await refusal(body, response.status));
  }
  return body;
}

function describe(status) {
  if (!status || !status.set) return say("notSet");
  const tail = status.last4 ? ` (…${status.last4})` : "";
  if (status.source === "env") {
    return say(status.file_set ? "setByEnvShadowing" : "setByEnv", { envVar: ENV_VAR, tail });
  }
  return say("set", { tail });
}

function toast(severity, summary, detail) {
  const toasts = app.extensionManager && app.extensionManager.toast;
  if (toasts && typeof toasts.add === "function") {
    toasts.add({ severity, summary, detail, life: severity === "error" ? 6000 : 3000 });
  }
}

function renderKeyEntry() {
  const classes = controlClasses();
  const root = document.createElement("div");
  root.className = "grok-imagine-api-key";
  root.style.cssText = "display:flex;flex-direction:column;gap:6px;align-items:flex-end;";

  const statusLine = document.createElement("span");
  statusLine.className = `grok-imagine-api-key-status ${classes.status}`.trim();
  statusLine.setAttribute("data-testid", "grok-imagine-key-status");
  statusLine.setAttribute("role", "status");
  statusLine.style.cssText = "max-width:22rem;text-align:right;";
  if (!classes.status) statusLine.style.cssText += "font-size:0.9em;opacity:0.85;";

  const row = document.createElement("div");
  row.style.cssText = "display:flex;gap:6px;align-items:center;";

  const input = document.createElement("input");
  input.type = "password";
  input.className = classes.input;
  input.autocomplete = "off";
  input.spellcheck = false;
  input.setAttribute("data-testid", "grok-imagine-key-input");
  input.style.cssText = "width:11rem;";

  const save = document.createElement("button");
  save.type = "button";
  save.className = classes.primary;
  save.setAttribute("data-testid", "grok-imagine-key-save");

  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = classes.secondary;
  remove.setAttribute("data-testid", "grok-imagine-key-remove");

  row.append(input, save, remove);
  root.append(statusLine, row);

  let lastStatus = undefined;
  const label = () => {
    input.placeholder = say("placeholder");
    input.setAttribute("aria-label", say("inputLabel"));
    save.textContent = say("save");
    remove.textContent = say("remove");
    remove.title = say("removeTitle");
    statusLine.textContent = lastStatus === undefined ? say("checking") : describe(lastStatus);
  };
  label();

  const show = (status) => {
    lastStatus = status;
    statusLine.textContent = describe(status);
    remove.disabled = !(status && status.file_set);
  };

  const submit = async (key) => {
    save.disabled = true;
    remove.disabled = true;
    try {
      const status = await callRoute({
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key }),
      });
      show(status);
      toast("success", "Grok Imagine", key ? say("saved") : say("removed"));
    } catch (error) {
      toast("error", say("notSaved"), error.message);
      statusLine.textContent = say("error", { reason: error.message });
      remove.disabled = false;
    } finally {
      save.disabled = false;
    }
  };

  save.addEventListener("click", () => {
    const key = input.value;
    input.value = ""; // the key leaves the page now, whatever the answer
    if (!key.trim()) {
      toast("warn", "Grok Imagine", say("pasteFirst"));
      return;
    }
    submit(key);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      save.click();
    }
  });
  remove.addEventListener("click", () => {
    input.value = "";
    submit("");
  });

  // Words first (so the status is never shown in English and then switched), then the status.
  loadWords()
    .then(label)
    .then(() => callRoute({ method: "GET" }))
    .then(show)
    .catch((error) => {
      statusLine.textContent = say("unknown", { reason: error.message });
    });
  return root;
}

app.registerExtension({
  name: "GrokImagine.ApiKeySettings",
  settings: [
    {
      id: SETTING_ID,
      category: ["Grok Imagine", "API key", "key"],
      name: ENGLISH.settingName,
      tooltip: ENGLISH.settingTooltip,
      // A render function instead of "text": ComfyUI would persist a text setting's value
      // in comfy.settings.json. This entry's stored value stays empty forever.
      type: () => renderKeyEntry(),
      defaultValue: "",
    },
  ],
});
