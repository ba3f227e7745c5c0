// Grok Imagine: the sidebar panel of every paid task, and the daily credit limit setting.
//
// The panel reads the pack's journal through its own routes (GET /grok_imagine/tasks, paged,
// newest first) and shows, per task: a thumbnail of its kept images, the prompt's start, the
// model, state, credits, when, and the task id. From a row: copy the id, add a Grok Load Task
// node for it (with a Preview Image, so it can be queued at once; loading is free), open the kept
// images. Rows in the `uncertain` state (a create whose answer was lost) can be resolved: the
// task id found in the API in One dashboard is fetched and kept (free), or the row is marked as
// not created. Totals for today and this month sit at the top.
//
// The limit entry (Settings > Grok Imagine) stores the value on the server, in a settings file
// beside the key file (never comfy.settings.json), because the runner enforces it there.
//
// Every word comes from the locale files (grokImagine.panel, grokImagine.limitEntry), in the UI
// language; a journal row's prompt, model and task id are shown as they are.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { controlClasses } from "./grok_imagine_controls.js";
import { loadWords, refusal, say, uiLocale } from "./grok_imagine_i18n.js";

const TAB_ID = "grok-imagine";
const PAGE_SIZE = 50;
const LOAD_TASK = "GrokImagineLoadTask";
const ENV_VAR = "GROK_IMAGINE_DAILY_CREDIT_LIMIT";

async function callRoute(path, options = {}) {
  let response;
  try {
    response = await api.fetchApi(path, { cache: "no-store", ...options });
  } catch (error) {
    throw new Error(say("panel.unreachable"));
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

function postJson(path, payload) {
  return callRoute(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
}

function toast(severity, summary, detail) {
  const toasts = app.extensionManager && app.extensionManager.toast;
  if (toasts && typeof toasts.add === "function") {
    toasts.add({ severity, summary, detail, life: severity === "error" ? 6000 : 3000 });
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === "style") node.style.cssText = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function button(label, testid, onclick, extra = {}) {
  return el("button", {
    type: "button",
    class: extra.variant ? controlClasses()[extra.variant] : controlClasses().text,
    style: extra.variant ? "" : "padding:2px 6px;font-size:0.8em;",
    "data-testid": testid,
    "aria-label": extra.ariaLabel || label,
    title: extra.title || label,
    text: label,
    onclick,
  });
}

// In the UI language, not the browser's (a Chinese UI in an English browser says 下午, not PM).
function when(seconds) {
  const date = new Date(seconds * 1000);
  const sameDay = date.toDateString() === new Date().toDateString();
  let locale = uiLocale();
  try {
    Intl.DateTimeFormat(locale);
  } catch (error) {
    locale = undefined; // a code the browser does not know: its own
  }
  return sameDay ? date.toLocaleTimeString(locale) : date.toLocaleString(locale);
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {
    // Without clipboard permission (plain http): the old way.
    const area = el("textarea", { style: "position:fixed;opacity:0;" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("success", "Grok Imagine", say("panel.copied", { taskId: text }));
}

export function addLoadTaskNode(taskId) {
  const LiteGraph = window.LiteGraph;
  const graph = app.graph;
  const node = LiteGraph.createNode(LOAD_TASK);
  const canvas = app.canvas;
  const [x, y] = canvas && canvas.ds
    ? [-canvas.ds.offset[0] + 80, -canvas.ds.offset[1] + 80]
    : [80, 80];
  node.pos = [x, y];
  graph.add(node);
  const widget = node.widgets.find((w) => w.name === "task_id");
  widget.value = taskId;
  const preview = LiteGraph.createNode("PreviewImage");
  if (preview) {
    preview.pos = [x + node.size[0] + 40, y];
    graph.add(preview);
    node.connect(0, preview, 0);
  }
  graph.setDirtyCanvas(true, true);
  return node;
}

function openImages(row) {
  // One tab with every kept image (a popup blocker lets one window through, not six).
  const tab = window.open("", "_blank");
  if (!tab) return toast("warn", "Grok Imagine", say("panel.popupBlocked"));
  const doc = tab.document;
  doc.title = say("panel.imagesTitle", { taskId: row.task_id });
  doc.body.style.cssText = "margin:0;background:#111;display:flex;flex-wrap:wrap;gap:8px;padding:8px;";
  for (const file of row.files) {
    const link = doc.createElement("a");
    link.href = api.apiURL(file.url);
    const img = doc.createElement("img");
    img.src = link.href;
    img.alt = say("panel.imageAlt", { index: file.index + 1, taskId: row.task_id });
    img.style.cssText = "max-width:48vw;max-height:90vh;";
    link.append(img);
    doc.body.append(link);
  }
}

function resolveBox(row, refresh) {
  const input = el("input", {
    type: "text",
    class: "p-inputtext p-component",
    placeholder: say("panel.resolvePlaceholder"),
    "aria-label": say("panel.resolveLabel", { row: row.id }),
    "data-testid": "grok-imagine-resolve-input",
    style: "flex:1 1 8rem;min-width:0;max-width:100%;box-sizing:border-box;font-size:0.8em;padding:2px 4px;",
  });
  const submit = async (payload, done) => {
    try {
      await postJson("/grok_imagine/resolve", payload);
      toast("success", "Grok Imagine", done);
      refresh();
    } catch (error) {
      toast("error", say("panel.notResolved"), error.message);
    }
  };
  const fetchIt = button(say("panel.fetch"), "grok-imagine-resolve-fetch", () => {
    const taskId = input.value.trim();
    if (!taskId) return toast("warn", "Grok Imagine", say("panel.pasteFirst"));
    submit({ entry: row.id, task_id: taskId }, say("panel.fetched", { taskId }));
  });
  const notCreated = button(say("panel.notCreated"), "grok-imagine-resolve-not-created", () =>
    submit({ entry: row.id, not_created: true }, say("panel.markedNotCreated", { row: row.id })),
  );
  return el(
    "div",
    { style: "display:flex;gap:4px;align-items:center;flex-wrap:wrap;margin-top:4px;" },
    el("span", {
      style: "font-size:0.8em;",
      text: say("panel.lost"),
    }),
    input,
    fetchIt,
    notCreated,
  );
}

function taskRow(row, refresh) {
  const first = row.files[0];
  const thumb = first
    ? el(
        "a",
        { href: api.apiURL(first.url), target: "_blank", rel: "noopener", title: say("panel.openImage") },
        el("img", {
          src: api.apiURL(first.thumbnail),
          alt: say("panel.thumbnailAlt", { taskId: row.task_id }),
          loading: "lazy",
          style: "width:56px;height:56px;object-fit:cover;border-radius:4px;",
        }),
      )
    : el("div", { style: "width:56px;height:56px;border-radius:4px;background:rgba(127,127,127,0.2);" });
  const what =
    row.kind === "upscale"
      ? say("panel.upscaleOf", { source: row.source_task_id })
      : row.kind === "loaded"
        ? say("panel.loadedById")
        : `${row.prompt}${row.prompt_truncated ? "…" : ""}`;
  const actions = el("div", { style: "display:flex;gap:2px;flex-wrap:wrap;" });
  if (row.task_id) {
    actions.append(
      button(say("panel.copyId"), "grok-imagine-copy-id", () => copyText(row.task_id), {
        ariaLabel: say("panel.copyIdLabel", { taskId: row.task_id }),
      }),
      button(say("panel.addLoadTask"), "grok-imagine-add-load-task", () => addLoadTaskNode(row.task_id), {
        ariaLabel: say("panel.addLoadTaskLabel", { taskId: row.task_id }),
        title: say("panel.addLoadTaskTitle"),
      }),
    );
  }
  if (row.files.length) {
    actions.append(
      button(say("panel.open", { count: row.files.length }), "grok-imagine-open", () => openImages(row), {
        ariaLabel: say("panel.openLabel", { taskId: row.task_id }),
      }),
    );
  }
  return el(
    "li",
    {
      "data-testid": "grok-imagine-task-row",
      "data-entry": String(row.id),
      "data-task-id": row.task_id || "",
      "data-state": row.state,
      style: "display:flex;gap:8px;padding:6px 8px;border-bottom:1px solid rgba(127,127,127,0.25);",
    },
    thumb,
    el(
      "div",
      { style: "flex:1;min-width:0;display:flex;flex-direction:column;gap:2px;" },
      el("div", {
        style: "white-space:nowrap;overflow:hidden;text-overflow:ellipsis;",
        "data-testid": row.kind === "upscale" || row.kind === "loaded" ? null : "grok-imagine-prompt",
        title: what,
        text: what,
      }),
      el("div", {
        style: "font-size:0.8em;opacity:0.8;",
        text: say("panel.meta", {
          model: row.model || "?",
          state: { key: `panel.state.${row.state}`, params: {} },
          credits: row.credits,
          when: when(row.created_at),
        }),
      }),
      el("div", {
        style: "font-size:0.8em;font-family:monospace;opacity:0.8;",
        "data-testid": "grok-imagine-task-id",
        text: row.task_id || say("panel.noTaskId"),
      }),
      actions,
      row.state === "uncertain" ? resolveBox(row, refresh) : null,
    ),
  );
}

function renderPanel(container) {
  let offset = 0;
  const totals = el("div", { "data-testid": "grok-imagine-totals", style: "font-size:0.9em;", text: "…" });
  const list = el("ul", { "data-testid": "grok-imagine-task-list", style: "list-style:none;margin:0;padding:0;" });
  const pageInfo = el("span", { style: "font-size:0.8em;opacity:0.8;" });
  const newer = button(say("panel.newer"), "grok-imagine-newer", () => show(Math.max(0, offset - PAGE_SIZE)));
  const older = button(say("panel.older"), "grok-imagine-older", () => show(offset + PAGE_SIZE));
  const refresh = () => show(offset);
  const header = el(
    "div",
    { style: "display:flex;flex-direction:column;gap:4px;padding:8px;border-bottom:1px solid rgba(127,127,127,0.4);" },
    el(
      "div",
      { style: "display:flex;justify-content:space-between;align-items:center;" },
      el("strong", { text: say("panel.heading") }),
      button(say("panel.refresh"), "grok-imagine-refresh", refresh),
    ),
    totals,
    el("div", { style: "display:flex;gap:4px;align-items:center;" }, newer, pageInfo, older),
  );
  const root = el(
    "div",
    { "data-testid": "grok-imagine-panel", style: "display:flex;flex-direction:column;height:100%;overflow:hidden;" },
    header,
    el("div", { style: "overflow-y:auto;flex:1;" }, list),
  );
  container.append(root);

  async function show(at) {
    let page;
    try {
      page = await callRoute(`/grok_imagine/tasks?offset=${at}&limit=${PAGE_SIZE}`);
    } catch (error) {
      totals.textContent = say("panel.unreadable", { reason: error.message });
      return;
    }
    offset = page.offset;
    const limit = page.limit_error
      ? say("panel.limitUnreadable", { reason: page.limit_message || page.limit_error })
      : page.daily_limit != null
        ? say(page.limit_source === "env" ? "panel.limitOfEnv" : "panel.limitOf", {
            limit: page.daily_limit,
            envVar: ENV_VAR,
          })
        : "";
    totals.textContent = say("panel.totals", { today: page.spent_today, limit, month: page.spent_month });
    list.replaceChildren(...page.rows.map((row) => taskRow(row, refresh)));
    if (!page.rows.length) list.append(el("li", { style: "padding:8px;opacity:0.8;", text: say("panel.noTasks") }));
    const last = Math.min(page.total, offset + page.rows.length);
    pageInfo.textContent = page.total ? say("panel.pageInfo", { first: offset + 1, last, total: page.total }) : "";
    newer.disabled = offset === 0;
    older.disabled = last >= page.total;
  }

  const onDone = () => show(offset);
  api.addEventListener("executed", onDone);
  api.addEventListener("execution_error", onDone);
  api.addEventListener("execution_success", onDone);
  show(0);
  return () => {
    api.removeEventListener("executed", onDone);
    api.removeEventListener("execution_error", onDone);
    api.removeEventListener("execution_success", onDone);
  };
}

function renderLimitEntry() {
  const look = controlClasses().status; // the frontend's muted small text, as the key entry's
  const status = el("span", {
    "data-testid": "grok-imagine-limit-status",
    class: look || null,
    style: `max-width:22rem;text-align:right;${look ? "" : "font-size:0.9em;opacity:0.85;"}`,
    text: say("limitEntry.checking"),
  });
  const input = el("input", {
    type: "number",
    min: "0",
    step: "1",
    class: controlClasses().input,
    placeholder: say("limitEntry.placeholder"),
    "aria-label": say("limitEntry.inputLabel"),
    "data-testid": "grok-imagine-limit-input",
    style: "width:8rem;",
  });
  const showStatus = (info) => {
    if (info.limit_source === "env") {
      status.textContent = say("limitEntry.perDayEnv", { limit: info.daily_limit, envVar: ENV_VAR });
    } else {
      status.textContent =
        info.daily_limit == null ? say("limitEntry.noLimit") : say("limitEntry.perDay", { limit: info.daily_limit });
      input.value = info.daily_limit == null ? "" : String(info.daily_limit);
    }
  };
  const save = button(say("limitEntry.save"), "grok-imagine-limit-save", async () => {
    const text = input.value.trim();
    if (text && !/^\d+$/.test(text)) {
      return toast("warn", "Grok Imagine", say("limitEntry.wholeNumber"));
    }
    try {
      showStatus(await postJson("/grok_imagine/limit", { limit: text ? Number(text) : null }));
      toast("success", "Grok Imagine", text ? say("limitEntry.saved", { limit: text }) : say("limitEntry.removed"));
    } catch (error) {
      toast("error", say("limitEntry.notSaved"), error.message);
    }
  }, { variant: "primary" });
  callRoute("/grok_imagine/limit")
    .then(showStatus)
    .catch((error) => {
      status.textContent = say("limitEntry.unknown", { reason: error.message });
    });
  return el(
    "div",
    { style: "display:flex;flex-direction:column;gap:6px;align-items:flex-end;" },
    status,
    el("div", { style: "display:flex;gap:6px;align-items:center;" }, input, save),
  );
}

let cleanup = null;

app.registerExtension({
  name: "GrokImagine.Panel",
  settings: [
    {
      id: "GrokImagine.DailyCreditLimit",
      category: ["Grok Imagine", "Spending", "limit"],
      name: "Daily credit limit",
      tooltip:
        "Most credits the Grok nodes may spend per calendar day (this machine's local day). A run " +
        "that would go over is refused before anything is sent; re-runs of paid tasks are free " +
        `and never refused. Empty: no limit. ${ENV_VAR} in ComfyUI's environment wins.`,
      // Rendered, not stored in comfy.settings.json: the server enforces the value it keeps.
      type: () => renderLimitEntry(),
      defaultValue: "",
    },
  ],
  async setup() {
    const manager = app.extensionManager;
    if (!manager || typeof manager.registerSidebarTab !== "function") return;
    await loadWords();
    manager.registerSidebarTab({
      id: TAB_ID,
      icon: "pi pi-images",
      title: say("panel.tabTitle"),
      tooltip: say("panel.tabTooltip"),
      type: "custom",
      render: (container) => {
        if (cleanup) cleanup();
        cleanup = renderPanel(container);
      },
      destroy: () => {
        if (cleanup) cleanup();
        cleanup = null;
      },
    });
  },
});
