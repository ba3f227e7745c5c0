// Grok Imagine: the pack's messages made into text. Pure functions, no imports, no side effects
// (ComfyUI loads this file as an extension module too; the tests run it under Node).
//
// `words` is a list of message trees (the `grokImagine` part of locales/<lang>/main.json), most
// specific first: the UI language, its base language, English. A part is a plain string (shown as
// it is: a provider's reason, a path) or a phrase `{key, params}`; a parameter may be a phrase
// too. A key with `_one` / `_other` forms picks one by the `count` parameter. A phrase marked
// `clause` is said inside another sentence: its final full stop is dropped.

function lookup(words, key) {
  for (const tree of words) {
    let value = tree;
    for (const name of key.split(".")) {
      value = value && typeof value === "object" ? value[name] : undefined;
    }
    if (typeof value === "string") return value;
  }
  return undefined;
}

function template(words, key, params) {
  if (typeof params.count === "number") {
    const form = lookup(words, `${key}_${params.count === 1 ? "one" : "other"}`);
    if (form !== undefined) return form;
  }
  return lookup(words, key);
}

export function format(words, part) {
  if (part === null || part === undefined) return "";
  if (typeof part !== "object") return String(part);
  const params = part.params || {};
  const text = template(words, part.key, params);
  if (text === undefined) return part.key;
  const made = text.replace(/\{(\w+)\}/g, (whole, name) =>
    name in params ? format(words, params[name]) : whole,
  );
  return part.clause ? made.replace(/[.\u3002]+$/, "") : made;
}

// Whether `words` have the message `key` (in any of its forms).
export function knows(words, key) {
  return [key, `${key}_one`, `${key}_other`].some((k) => lookup(words, k) !== undefined);
}

export function say(words, key, params = {}) {
  return format(words, { key, params });
}

// A node's status (nodes/status_board.py) as lines: a header with the node's name and running
// time, a refusal of the whole run, one line per task, the warnings.
export function statusLines(words, status, title) {
  const separator = say(words, "status.separator");
  const lines = [say(words, "status.header", { title, seconds: status.seconds })];
  if (status.refusal) lines.push(format(words, status.refusal));
  for (const task of status.tasks || []) {
    const parts = [];
    if (task.label) parts.push(format(words, task.label));
    parts.push(format(words, task.state));
    if (task.seconds !== null && task.seconds !== undefined) {
      parts.push(say(words, "status.seconds", { seconds: task.seconds }));
    }
    if (task.taskId) parts.push(say(words, "status.taskId", { taskId: task.taskId }));
    if (task.cost) parts.push(format(words, task.cost));
    if (task.note) parts.push(format(words, task.note));
    lines.push(parts.join(separator));
  }
  for (const warning of status.warnings || []) lines.push(format(words, warning));
  return lines;
}
