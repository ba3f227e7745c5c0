// Grok Imagine: the "API key" entry in ComfyUI's Settings dialog.
//
// The key is pasted here once and posted straight to the pack's server route, which stores it
// in a 0600 file in ComfyUI's user directory. The entry uses a custom render function and never
// calls the settings setter, so the key is never written to comfy.settings.json, a workflow or
// PNG metadata; after saving, the page only knows "set (…abcd)" or "not set".
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const SETTING_ID = "GrokImagine.ApiKey";
const ROUTE = "/grok_imagine/key";
const ENV_VAR = "APIINONE_API_KEY";

async function callRoute(options) {
  let response;
  try {
    response = await api.fetchApi(ROUTE, { cache: "no-store", ...options });
  } catch (error) {
    throw new Error("Could not reach the ComfyUI server.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    const reason = body && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
    throw new Error(reason);
  }
  return body;
}

function describe(status) {
  if (!status || !status.set) return "not set";
  const tail = status.last4 ? ` (…${status.last4})` : "";
  if (status.source === "env") {
    const shadow = status.file_set ? "; the saved key is not used while it is set" : "";
    return `set by ${ENV_VAR}${tail}${shadow}`;
  }
  return `set${tail}`;
}

function toast(severity, summary, detail) {
  const toasts = app.extensionManager && app.extensionManager.toast;
  if (toasts && typeof toasts.add === "function") {
    toasts.add({ severity, summary, detail, life: severity === "error" ? 6000 : 3000 });
  }
}

function renderKeyEntry() {
  const root = document.createElement("div");
  root.className = "grok-imagine-api-key";
  root.style.cssText = "display:flex;flex-direction:column;gap:6px;align-items:flex-end;";

  const statusLine = document.createElement("span");
  statusLine.className = "grok-imagine-api-key-status";
  statusLine.setAttribute("data-testid", "grok-imagine-key-status");
  statusLine.style.cssText = "font-size:0.9em;opacity:0.85;max-width:22rem;text-align:right;";
  statusLine.textContent = "checking…";

  const row = document.createElement("div");
  row.style.cssText = "display:flex;gap:6px;align-items:center;";

  const input = document.createElement("input");
  input.type = "password";
  input.className = "p-inputtext p-component";
  input.placeholder = "paste key";
  input.autocomplete = "off";
  input.spellcheck = false;
  input.setAttribute("aria-label", "Grok Imagine API key");
  input.setAttribute("data-testid", "grok-imagine-key-input");
  input.style.cssText = "width:11rem;";

  const save = document.createElement("button");
  save.type = "button";
  save.className = "p-button p-component p-button-sm";
  save.textContent = "Save";
  save.setAttribute("data-testid", "grok-imagine-key-save");

  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "p-button p-component p-button-sm p-button-secondary";
  remove.textContent = "Remove";
  remove.title = "Delete the saved key file";
  remove.setAttribute("data-testid", "grok-imagine-key-remove");

  row.append(input, save, remove);
  root.append(statusLine, row);

  const show = (status) => {
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
      toast("success", "Grok Imagine", key ? "API key saved." : "Saved API key removed.");
    } catch (error) {
      toast("error", "Grok Imagine: API key not saved", error.message);
      statusLine.textContent = `error: ${error.message}`;
      remove.disabled = false;
    } finally {
      save.disabled = false;
    }
  };

  save.addEventListener("click", () => {
    const key = input.value;
    input.value = ""; // the key leaves the page now, whatever the answer
    if (!key.trim()) {
      toast("warn", "Grok Imagine", "Paste a key first (Remove deletes the saved one).");
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

  callRoute({ method: "GET" })
    .then(show)
    .catch((error) => {
      statusLine.textContent = `unknown (${error.message})`;
    });
  return root;
}

app.registerExtension({
  name: "GrokImagine.ApiKeySettings",
  settings: [
    {
      id: SETTING_ID,
      category: ["Grok Imagine", "API key", "key"],
      name: "API in One key",
      tooltip:
        "Your API in One key for the Grok Imagine nodes. It is stored on the ComfyUI server " +
        "(grok_imagine/api_key in ComfyUI's user directory, owner-only) and never in " +
        `settings, workflows or images. ${ENV_VAR} in ComfyUI's environment takes precedence.`,
      // A render function instead of "text": ComfyUI would persist a text setting's value
      // in comfy.settings.json. This entry's stored value stays empty forever.
      type: () => renderKeyEntry(),
      defaultValue: "",
    },
  ],
});
