// The actionkit console's page: plain JavaScript, no framework, no build step.
//
// Every call goes to the JSON API under /console/api with the token the person entered (kept
// in this tab's session storage) as `Authorization: Bearer`. Everything from the server or the
// event is put into the page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "actionkit-console-token";
const state = {
  destinations: [],
  instances: [],
  examples: [],
  previewTimer: 0,
  previewSeq: 0,
  // Whether this console has a queue (it runs inside `actionkit serve`).
  queue: null,
  // The last Event Tester run: the text tested and what it found.
  tested: null,
  overviewTimer: 0,
  overview: null,
  overviewShown: "",
  dlqShown: "",
  dlqEntries: [],
  dlqSelected: new Set(),
  failuresAll: false,
};

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function codeBlock(value, label) {
  return el("pre", { class: "code", tabindex: "0", "aria-label": label }, pretty(value));
}

// ---------------------------------------------------------------------------------------------
// The API.

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const init = { headers: { authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`/console/api/${path}`, init);
  let data = null;
  try {
    data = await res.json();
  } catch (_) {
    data = null;
  }
  if (res.status === 401) {
    $("token-status").textContent = "The server refused the token; enter it again.";
    $("token").focus();
  }
  if (!res.ok) {
    throw new ApiError((data && data.error) || `the server answered ${res.status}`, res.status);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Tabs: buttons, arrow keys move between them.

function showTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (tab.id === "tab-editor") schedulePreview(0);
  if (tab.id === "tab-overview") {
    refreshOverview();
  }
  scheduleOverview();
}

function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, idx) => {
    tab.addEventListener("click", () => showTab(tab));
    tab.addEventListener("keydown", (ev) => {
      const step = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = tabs[(idx + step + tabs.length) % tabs.length];
      showTab(next);
      next.focus();
      ev.preventDefault();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Destinations and instances.

function requiredText(required) {
  if (required === true) return "required";
  if (required && required.when) return `required when ${required.when}`;
  return "optional";
}

function table(caption, headers, rows) {
  return el(
    "table",
    {},
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))),
  );
}

function jsonCell(value) {
  return value === null || value === undefined ? "" : el("code", { text: JSON.stringify(value) });
}

function renderDestinations() {
  const box = $("destinations");
  box.replaceChildren();
  for (const dest of state.destinations) {
    const settings = table(
      "Settings",
      ["Key", "Label", "Type", "Required", "Default"],
      dest.settings.map((s) => [
        el("code", { text: s.key }),
        s.label,
        s.secret ? `${s.type} (secret)` : s.type,
        s.required ? "required" : "optional",
        jsonCell(s.default),
      ]),
    );
    const presets = table(
      "Presets",
      ["Name", "Action", "Trigger", "Enabled"],
      dest.presets.map((p) => [p.name, el("code", { text: p.action }), el("code", { text: p.trigger }), p.enabled ? "yes" : "no"]),
    );
    const actions = dest.actions.map((a) =>
      el(
        "details",
        { class: "card" },
        el("summary", {}, el("strong", { text: a.name }), " ", el("code", { text: a.key }), a.beyond_segment ? el("span", { class: "badge", text: "beyond Segment" }) : null),
        el("p", { text: a.description }),
        a.default_trigger
          ? el("p", {}, "Default trigger: ", el("code", { text: a.default_trigger }))
          : el("p", { text: "No default trigger: a mapping gives its own." }),
        table(
          `Fields of ${a.name}`,
          ["Key", "Label", "Type", "Required", "Default mapping"],
          a.fields.map((f) => [
            el("code", { text: f.key }),
            f.label,
            `${f.type}${f.multiple ? " (list)" : ""}${f.choices ? ` (one of ${f.choices.map((c) => JSON.stringify(c.value)).join(", ")})` : ""}`,
            requiredText(f.required),
            jsonCell(f.default),
          ]),
        ),
      ),
    );
    box.append(
      el("article", { class: "card" }, el("h3", {}, dest.name, " ", el("code", { text: dest.slug })), settings, presets, el("h4", { text: "Actions" }), actions),
    );
  }
}

function renderInstances() {
  const box = $("instances");
  box.replaceChildren();
  if (!state.instances.length) {
    box.append(el("p", { class: "muted", text: "No instance is configured." }));
  }
  for (const inst of state.instances) {
    const settings = Object.entries(inst.settings).map(([k, v]) => [el("code", { text: k }), el("code", { text: typeof v === "string" ? v : JSON.stringify(v) })]);
    box.append(
      el(
        "article",
        { class: "card" },
        el("h3", {}, inst.name, " ", el("span", { class: "muted", text: `→ ${inst.destination_name}` })),
        table("Settings (secrets redacted)", ["Setting", "Value"], settings),
        table(
          "Mappings",
          ["Name", "Action", "Trigger", "Enabled"],
          inst.mappings.map((m) => [m.name, el("code", { text: m.action }), el("code", { text: m.trigger }), m.enabled ? "yes" : "no"]),
        ),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Showing results: requests, errors, mapped values.

function requestView(request) {
  return el(
    "div",
    { class: "request" },
    el("p", { class: "requestline" }, el("strong", { text: request.method }), " ", el("code", { text: request.url })),
    table("Headers", ["Header", "Value"], request.headers.map((h) => [el("code", { text: h.name }), el("code", { text: h.value })])),
    request.json === null || request.json === undefined ? el("p", { class: "muted", text: "No body." }) : codeBlock(request.json, "JSON body"),
  );
}

function resultView(result) {
  if (!result) return null;
  if (result.kind === "request") return el("div", {}, el("h4", { text: "Request" }), requestView(result.request));
  if (result.kind === "invalid") {
    return el("div", { class: "error-box", role: "note" }, el("strong", { text: `${result.error.name}: ` }), result.error.message);
  }
  if (result.kind === "batch") {
    return el("div", {}, el("h4", { text: "Batch entry (sent with others in one request)" }), codeBlock(result.entry, "Batch entry"));
  }
  return el("p", { class: "muted", text: `Skipped: ${result.reason}` });
}

function valuesView(payload) {
  if (!payload || typeof payload !== "object") return null;
  const rows = Object.entries(payload).map(([k, v]) => [el("code", { text: k }), el("code", { text: JSON.stringify(v) })]);
  return table("Mapped fields", ["Field", "Value"], rows);
}

function whyNotView(whyNot) {
  if (!whyNot || !whyNot.length) return null;
  return el(
    "ul",
    { class: "whynot" },
    whyNot.map((m) => el("li", {}, el("code", { text: m.condition }), " is false: the event has ", el("code", { text: m.found }))),
  );
}

/** The line of `text` a problem is on, with a caret under its column. */
function caretView(text, line, column) {
  if (!column) return null;
  const lines = String(text).split("\n");
  const shown = lines[(line || 1) - 1];
  if (shown === undefined) return null;
  return el("pre", { class: "caret", "aria-hidden": "true" }, `${shown}\n${" ".repeat(Math.max(0, column - 1))}^`);
}

function problemText(problem) {
  const at = problem.line ? `line ${problem.line}, column ${problem.column}: ` : problem.column ? `column ${problem.column}: ` : "";
  return `${at}${problem.message}`;
}

// ---------------------------------------------------------------------------------------------
// Confirmation: a modal dialog (Escape or Cancel says no; Cancel has the focus first).

let confirmResolve = null;

/** Asks `title`; resolves true when the person presses the `ok` button. */
function confirmAction({ title, text, items, ok, danger }) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-items").replaceChildren(...(items || []).map((item) => el("li", {}, item)));
  $("confirm-items").hidden = !(items && items.length);
  $("confirm-ok").textContent = ok;
  $("confirm-ok").className = danger ? "danger-solid" : "primary";
  return new Promise((resolve) => {
    confirmResolve = resolve;
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

function closeConfirm(answer) {
  const dialog = $("confirm");
  if (dialog.open) dialog.close();
  if (confirmResolve) {
    const resolve = confirmResolve;
    confirmResolve = null;
    resolve(answer);
  }
}

// ---------------------------------------------------------------------------------------------
// The Event Tester.

async function runTest() {
  const out = $("test-results");
  $("event-error").replaceChildren();
  $("event").removeAttribute("aria-invalid");
  let data;
  try {
    data = await api("test", { event_text: $("event").value });
  } catch (err) {
    out.replaceChildren(el("div", { class: "error-box", role: "alert", text: err.message }));
    return;
  }
  if (data.errors.length) {
    const problem = data.errors[0];
    $("event").setAttribute("aria-invalid", "true");
    $("event-error").replaceChildren(el("span", { text: problemText(problem) }), caretView($("event").value, problem.line, problem.column));
    out.replaceChildren(el("p", { class: "muted", text: "Fix the event to see what the mappings do." }));
    return;
  }
  state.tested = { text: $("event").value, data };
  out.replaceChildren();
  for (const inst of data.instances) {
    const matched = inst.mappings.filter((m) => m.matched && m.enabled).length;
    out.append(el("h3", {}, inst.name, " ", el("span", { class: "muted", text: matched === 1 ? "1 mapping matched" : matched ? `${matched} mappings matched` : "no enabled mapping matched: not subscribed" })));
    out.append(sendBox(inst));
    const sorted = [...inst.mappings].sort((a, b) => Number(b.matched && b.enabled) - Number(a.matched && a.enabled));
    for (const m of sorted) {
      const status = !m.enabled ? ["off", "disabled"] : m.matched ? ["ok", "matched"] : ["no", "not matched"];
      const card = el(
        "details",
        { class: `card mapping ${status[0]}`, open: m.matched && m.enabled },
        el("summary", {}, el("span", { class: `badge ${status[0]}`, text: status[1] }), " ", el("strong", { text: m.name }), " ", el("code", { text: m.action }), " ", el("span", { class: "muted" }, "trigger ", el("code", { text: m.trigger }))),
        m.enabled ? whyNotView(m.why_not) : null,
        valuesView(m.payload),
        resultView(m.result),
      );
      out.append(card);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The real send: what the tester showed for one instance, sent for real after a confirmation.

/** The requests a tested instance would send: matched, enabled mappings that built one. */
function sendable(inst) {
  return inst.mappings.filter((m) => m.matched && m.enabled && m.result && (m.result.kind === "request" || m.result.kind === "batch"));
}

function sendBox(inst) {
  const count = sendable(inst).length;
  const id = `send-${inst.name}`;
  const button = el("button", { type: "button", class: "danger", id: `${id}-button`, disabled: count === 0 }, count ? `Send to ${inst.name} for real…` : "Nothing to send");
  const answers = el("div", { id: `${id}-answers`, class: "stack", "aria-live": "polite" });
  button.addEventListener("click", () => realSend(inst, answers));
  return el(
    "div",
    { class: "sendbox" },
    el("div", { class: "row" }, button, el("span", { class: "muted", text: "Sends this event's requests to the destination now, once each, with the real credentials; the queue is not involved." })),
    answers,
  );
}

async function realSend(inst, box) {
  const items = sendable(inst).map((m) => {
    const url = m.result.kind === "request" ? `${m.result.request.method} ${m.result.request.url}` : "a batch of one entry";
    return `${m.name} (${m.action}): ${url}`;
  });
  const ok = await confirmAction({
    title: `Send for real to ${inst.name}?`,
    text: `This sends ${items.length === 1 ? "1 request" : `${items.length} requests`} to the destination now, with the instance's real credentials. The destination records them as it would any event.`,
    items,
    ok: items.length === 1 ? "Send 1 request" : `Send ${items.length} requests`,
    danger: true,
  });
  if (!ok) return;
  box.replaceChildren(el("p", { class: "muted", text: "Sending…" }));
  let data;
  try {
    data = await api("send", { instance: inst.name, event_text: state.tested.text });
  } catch (err) {
    box.replaceChildren(el("div", { class: "error-box", role: "alert", text: err.message }));
    return;
  }
  if (data.errors.length) {
    box.replaceChildren(el("div", { class: "error-box", role: "alert", text: problemText(data.errors[0]) }));
    return;
  }
  box.replaceChildren(el("h4", { text: `Answers from ${inst.name}` }), ...data.sends.map(answerView));
}

const OUTCOME_WORDS = {
  delivered: ["ok", "delivered"],
  retryable: ["warn", "failed, retryable"],
  busy: ["warn", "busy"],
  failed: ["bad", "failed"],
};

function answerView(sent) {
  const head = el("p", {}, el("strong", { text: sent.name || sent.action }), " ", el("code", { text: sent.action || "" }));
  if (!sent.answer) {
    const why = sent.error ? `${sent.error.name}: ${sent.error.message}` : "not sent";
    return el("div", { class: "card answer" }, head, el("p", { class: "error-box", text: `Not sent: ${why}` }));
  }
  const a = sent.answer;
  const [cls, word] = OUTCOME_WORDS[a.outcome] || ["", a.outcome];
  const status = a.status === null || a.status === undefined ? "no answer" : `HTTP ${a.status}`;
  let body = null;
  if (a.body) {
    let shown = a.body;
    try {
      shown = pretty(JSON.parse(a.body));
    } catch (_) {
      // Not JSON: shown as it came.
    }
    body = el("pre", { class: "code", tabindex: "0", "aria-label": "Answer body" }, shown);
  }
  return el(
    "div",
    { class: `card answer ${cls}` },
    head,
    el("p", {}, el("span", { class: `badge ${cls}`, text: word }), " ", el("strong", { text: status }), sent.request ? el("span", { class: "muted" }, " to ", el("code", { text: sent.request.url })) : null),
    a.reason ? el("p", { class: "reason", text: a.reason }) : null,
    body || (a.outcome === "delivered" ? el("p", { class: "muted", text: "The answer had no body." }) : null),
  );
}

function loadExample() {
  const idx = Number($("example").value);
  const example = state.examples[idx];
  if (!example) return;
  $("event").value = pretty(example.event);
  $("event-error").replaceChildren();
  $("event").removeAttribute("aria-invalid");
}

// ---------------------------------------------------------------------------------------------
// The mapping editor.

function currentInstance() {
  return state.instances.find((i) => i.name === $("ed-instance").value);
}

function currentAction() {
  const inst = currentInstance();
  const dest = inst && state.destinations.find((d) => d.slug === inst.destination);
  return dest && dest.actions.find((a) => a.key === $("ed-action").value);
}

function fillActions() {
  const inst = currentInstance();
  const dest = inst && state.destinations.find((d) => d.slug === inst.destination);
  const select = $("ed-action");
  select.replaceChildren(...(dest ? dest.actions : []).map((a) => el("option", { value: a.key, text: `${a.name} (${a.key})` })));
  fillFields();
}

/** Fills the trigger and fields from the instance's mapping of the action, else its defaults. */
function fillFields() {
  const inst = currentInstance();
  const action = currentAction();
  const box = $("ed-fields");
  box.replaceChildren();
  if (!action) return;
  const existing = inst.mappings.find((m) => m.action === action.key);
  $("ed-name").value = existing ? existing.name : action.name;
  // An action without a default trigger (Segment's Webhook) starts from every type of event.
  $("ed-trigger").value = existing
    ? existing.trigger
    : action.default_trigger ||
      'type = "track" or type = "identify" or type = "page" or type = "screen" or type = "group" or type = "alias"';
  const mapping = existing ? existing.mapping : action.default_mapping;
  for (const field of action.fields) {
    const id = `field-${field.key}`;
    const value = mapping && mapping[field.key] !== undefined ? JSON.stringify(mapping[field.key]) : "";
    box.append(
      el(
        "div",
        { class: "fieldbox" },
        el("label", { for: id }, el("strong", { text: field.label }), " ", el("code", { text: field.key }), " ", el("span", { class: "muted", text: `${field.type}${field.multiple ? " list" : ""}, ${requiredText(field.required)}` })),
        el("textarea", { id, class: "code field", rows: "2", spellcheck: "false", "data-key": field.key, "aria-describedby": `err-${id} val-${id}` }),
        el("div", { id: `err-${id}`, class: "error" }),
        el("div", { id: `val-${id}`, class: "value muted" }),
      ),
    );
    $(id).value = value;
  }
  schedulePreview(0);
}

function schedulePreview(delay) {
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(runPreview, delay === undefined ? 300 : delay);
}

function clearEditorErrors() {
  for (const node of document.querySelectorAll("#view-editor .error")) node.replaceChildren();
  for (const node of document.querySelectorAll("#view-editor [aria-invalid]")) node.removeAttribute("aria-invalid");
  for (const node of document.querySelectorAll("#ed-fields .value")) node.replaceChildren();
}

async function runPreview() {
  const action = currentAction();
  if (!action) return;
  const seq = ++state.previewSeq;
  const fields = {};
  for (const area of document.querySelectorAll("#ed-fields textarea")) fields[area.dataset.key] = area.value;
  let data;
  try {
    data = await api("preview", {
      instance: $("ed-instance").value,
      action: action.key,
      name: $("ed-name").value,
      trigger: $("ed-trigger").value,
      fields_text: fields,
      event_text: $("event").value,
    });
  } catch (err) {
    if (seq !== state.previewSeq) return;
    clearEditorErrors();
    $("ed-general").textContent = err.message;
    return;
  }
  if (seq !== state.previewSeq) return;
  renderPreview(data);
}

function renderPreview(data) {
  clearEditorErrors();
  const general = [];
  for (const problem of data.errors) {
    let input = null;
    let box = null;
    if (problem.where === "trigger") {
      input = $("ed-trigger");
      box = $("err-trigger");
    } else if (problem.where.startsWith("fields.")) {
      const id = `field-${problem.where.slice("fields.".length)}`;
      input = $(id);
      box = $(`err-${id}`);
    }
    if (!input || !box) {
      general.push(problem.where === "event" ? `The event in the Event Tester: ${problemText(problem)}` : problemText(problem));
      continue;
    }
    input.setAttribute("aria-invalid", "true");
    box.append(el("div", { text: problemText(problem) }), caretView(input.value, problem.line, problem.column));
  }
  $("ed-general").textContent = general.join(" ");

  const preview = $("preview");
  preview.replaceChildren();
  if (data.trigger && data.trigger.matched !== undefined) {
    preview.append(
      data.trigger.matched
        ? el("p", {}, el("span", { class: "badge ok", text: "matched" }), " The trigger matches the event.")
        : el("div", {}, el("p", {}, el("span", { class: "badge no", text: "not matched" }), " The trigger does not match the event; nothing would be sent."), whyNotView(data.trigger.why_not)),
    );
  }
  if (data.payload && typeof data.payload === "object") {
    for (const [key, value] of Object.entries(data.payload)) {
      const box = $(`val-field-${key}`);
      if (box) box.textContent = `→ ${JSON.stringify(value)}`;
    }
    preview.append(valuesView(data.payload));
  }
  preview.append(resultView(data.result) || "");
  if (data.errors.length && !preview.childElementCount) {
    preview.append(el("p", { class: "muted", text: "Fix the errors marked on the left to see the mapped values and the request." }));
  }
  $("yaml").value = data.yaml || "";
  $("copy-yaml").disabled = !data.yaml;
  $("copy-status").textContent = data.yaml ? "" : "Fix the errors to get the YAML.";
}

async function copyYaml() {
  const text = $("yaml").value;
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (_) {
    $("yaml").select();
    copied = document.execCommand("copy");
  }
  $("copy-status").textContent = copied ? "Copied to the clipboard." : "Select the YAML and copy it by hand.";
}

// ---------------------------------------------------------------------------------------------
// The delivery overview: counts per instance and action, recent failures, dead letters.

const OVERVIEW_EVERY_MS = 5000;

function overviewVisible() {
  return !$("view-overview").hidden;
}

function scheduleOverview() {
  clearTimeout(state.overviewTimer);
  if (!overviewVisible() || !$("ov-auto").checked || state.queue !== true) return;
  state.overviewTimer = setTimeout(async () => {
    // Nothing changes under a person deciding in the dialog.
    if (!$("confirm").open) await refreshOverview();
    scheduleOverview();
  }, OVERVIEW_EVERY_MS);
}

function timeText(ms) {
  const at = new Date(ms);
  const today = new Date().toDateString() === at.toDateString();
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return today ? time : `${at.toLocaleDateString()} ${time}`;
}

function ageText(ms) {
  if (ms === null || ms === undefined) return "none";
  const secs = Math.round(ms / 1000);
  if (secs < 90) return `${secs} s`;
  const mins = Math.round(secs / 60);
  if (mins < 90) return `${mins} min`;
  const hours = Math.floor(mins / 60);
  return `${hours} h ${mins % 60} min`;
}

function showNoQueue() {
  $("ov-noqueue").hidden = false;
  $("ov-body").hidden = true;
  $("ov-controls").hidden = true;
}

async function refreshOverview() {
  if (state.queue === false) {
    showNoQueue();
    return;
  }
  if (state.queue !== true) return;
  let data;
  try {
    data = await api("overview");
  } catch (err) {
    $("ov-error").hidden = false;
    $("ov-error").textContent = err.message;
    // A refused token is not asked about again every few seconds.
    if (err.status === 401) $("ov-auto").checked = false;
    return;
  }
  $("ov-error").hidden = !data.queue_error;
  $("ov-error").textContent = data.queue_error || "";
  state.overview = data;
  $("ov-status").textContent = `Updated at ${timeText(data.now_ms)}.`;
  const since = timeText(data.counted_since_ms);
  const young = data.now_ms - data.counted_since_ms < 24 * 3600 * 1000;
  $("ov-scope").textContent =
    `Counted by this serve process${young ? ` since it started at ${since}` : ""} in whole minutes; each node of a cluster counts its own, while the queue and its dead letters are shared.`;
  const shown = JSON.stringify([data.instances, data.failures, $("fail-instance").value]);
  if (shown !== state.overviewShown) {
    state.overviewShown = shown;
    renderCounts(data);
    fillInstanceFilters(data);
    renderFailures(data);
  }
  await refreshDlq();
}

function countCell(counts, key, cls, window) {
  const n = counts[key];
  const td = el("td", { class: `num ${n ? cls : "zero"}`, "data-count": `${window}-${key}` }, String(n));
  if (key === "skipped" && n) {
    const by = Object.entries(counts.skipped_by)
      .filter(([, v]) => v)
      .map(([k, v]) => `${k.replace("_", " ")} ${v}`)
      .join(", ");
    td.append(el("span", { class: "by", text: by }));
  }
  return td;
}

const COLUMNS = [
  ["delivered", "Delivered", "ok"],
  ["retried", "Retried", "warn"],
  ["dead_lettered", "Dead-lettered", "bad"],
  ["skipped", "Skipped", ""],
];

function countsRow(label, windows, isTotal) {
  return el(
    "tr",
    { class: isTotal ? "total" : "" },
    el("th", { scope: "row" }, label),
    COLUMNS.map(([key, , cls]) => countCell(windows.hour, key, cls, "hour")),
    COLUMNS.map(([key, , cls]) => countCell(windows.day, key, cls, "day")),
  );
}

function tile(label, value, cls) {
  return el("div", { class: `tile ${cls || ""}` }, el("span", { class: "tile-value", text: value }), el("span", { class: "tile-label", text: label }));
}

function renderCounts(data) {
  const box = $("ov-instances");
  box.replaceChildren();
  for (const inst of data.instances) {
    const q = inst.queue;
    const tiles = q
      ? el(
          "div",
          { class: "tiles", role: "group", "aria-label": `Queue of ${inst.name}` },
          tile("pending", String(q.pending)),
          tile("retry scheduled", String(q.retry_scheduled), q.retry_scheduled ? "warn" : ""),
          tile("in flight", String(q.in_flight)),
          tile("dead-lettered", String(q.dead_lettered), q.dead_lettered ? "bad" : ""),
          tile("oldest pending", ageText(q.oldest_pending_age_ms)),
        )
      : el("p", { class: "muted", text: "The queue's counts cannot be read now." });
    const head = el(
      "thead",
      {},
      el("tr", {}, el("td"), el("th", { scope: "colgroup", colspan: "4", class: "group" }, "Last hour"), el("th", { scope: "colgroup", colspan: "4", class: "group" }, "Last 24 hours")),
      el("tr", {}, el("th", { scope: "col" }, "Action"), COLUMNS.map(([, name]) => el("th", { scope: "col", class: "num" }, name)), COLUMNS.map(([, name]) => el("th", { scope: "col", class: "num" }, name))),
    );
    const rows = inst.actions.map((a) => countsRow(a.action ? el("code", { text: a.action }) : el("span", { class: "muted", text: "no action (no trigger matched, switched off, unreadable)" }), a, false));
    const table = el(
      "table",
      { class: "counts" },
      el("caption", { text: `What became of the events of ${inst.name}, per action (an event that reaches two actions counts for each)` }),
      head,
      el("tbody", {}, rows, countsRow("All events", inst.events, true)),
    );
    box.append(el("article", { class: "card" }, el("h3", {}, inst.name, " ", el("span", { class: "muted", text: `→ ${inst.destination}` })), tiles, table));
  }
}

function fillInstanceFilters(data) {
  for (const id of ["fail-instance", "dlq-instance"]) {
    const select = $(id);
    const current = select.value;
    const names = data.instances.map((i) => i.name);
    const wanted = ["", ...names];
    const have = [...select.options].map((o) => o.value);
    if (JSON.stringify(have) !== JSON.stringify(wanted)) {
      select.replaceChildren(el("option", { value: "", text: "All instances" }), ...names.map((n) => el("option", { value: n, text: n })));
      select.value = wanted.includes(current) ? current : "";
    }
  }
}

/** How many recent failures show before "Show all". */
const FAILURES_SHOWN = 8;

function renderFailures(data) {
  const only = $("fail-instance").value;
  const all = data.failures.filter((f) => !only || f.instance === only);
  const box = $("ov-failures");
  if (!all.length) {
    box.replaceChildren(el("p", { class: "muted", text: only ? `No recent failures of ${only}.` : "No failures since the server started." }));
    return;
  }
  const failures = state.failuresAll ? all : all.slice(0, FAILURES_SHOWN);
  let more = null;
  if (all.length > FAILURES_SHOWN) {
    more = el("button", { type: "button", class: "small", "aria-expanded": String(Boolean(state.failuresAll)) }, state.failuresAll ? `Show the ${FAILURES_SHOWN} newest` : `Show all ${all.length}`);
    more.addEventListener("click", () => {
      state.failuresAll = !state.failuresAll;
      renderFailures(data);
      box.querySelector("button")?.focus();
    });
  }
  box.replaceChildren(
    table(
      failures.length === all.length ? `The ${all.length === 1 ? "failure" : `${all.length} failures`} kept, newest first` : `The ${failures.length} newest of ${all.length} failures kept`,
      ["Time", "Instance", "Action", "Message ID", "Outcome", "Status", "Reason"],
      failures.map((f) => [
        timeText(f.at_ms),
        f.instance,
        f.action ? el("code", { text: f.action }) : el("span", { class: "muted", text: "the event" }),
        el("code", { text: f.message_id }),
        f.outcome === "dead_lettered" ? el("span", { class: "badge bad", text: "dead-lettered" }) : el("span", { class: "badge warn", text: "retried" }),
        f.status === null ? "none" : String(f.status),
        el("span", { class: "reason", text: f.reason }),
      ]),
    ),
    more,
  );
}

async function refreshDlq() {
  const instance = $("dlq-instance").value;
  let data;
  try {
    data = await api("dlq/list", instance ? { instance, limit: 200 } : { limit: 200 });
  } catch (err) {
    $("dlq-list").replaceChildren(el("div", { class: "error-box", role: "alert", text: err.message }));
    return;
  }
  state.dlqEntries = data.entries;
  const ids = new Set(data.entries.map((e) => e.id));
  for (const id of [...state.dlqSelected]) if (!ids.has(id)) state.dlqSelected.delete(id);
  const shown = JSON.stringify([data.entries, instance]);
  // A list someone is working in is not redrawn under their focus; the next refresh does it.
  if (shown !== state.dlqShown && !$("dlq-list").contains(document.activeElement)) {
    state.dlqShown = shown;
    renderDlq(data.entries, instance);
  }
  updateDlqButtons();
}

function renderDlq(entries, instance) {
  const box = $("dlq-list");
  if (!entries.length) {
    box.replaceChildren(el("p", { class: "muted", text: instance ? `No dead letters of ${instance}.` : "The dead-letter queue is empty." }));
    return;
  }
  const rows = entries.map((e) => {
    const check = el("input", { type: "checkbox", id: `dlq-check-${e.id}`, "aria-label": `Select delivery ${e.id} (${e.message_id})` });
    check.checked = state.dlqSelected.has(e.id);
    check.addEventListener("change", () => {
      if (check.checked) state.dlqSelected.add(e.id);
      else state.dlqSelected.delete(e.id);
      updateDlqButtons();
    });
    const show = el("button", { type: "button", class: "small", "aria-label": `Show delivery ${e.id}` }, "Show");
    show.addEventListener("click", () => showDeadLetter(e.id));
    return el(
      "tr",
      {},
      el("td", {}, check),
      el("td", { class: "num" }, String(e.id)),
      el("td", {}, timeText(e.dead_at_ms)),
      el("td", {}, e.destination),
      el("td", {}, el("code", { text: e.message_id })),
      el("td", { class: "num" }, String(e.attempts)),
      el("td", {}, el("span", { class: "reason", text: e.reason })),
      el("td", {}, show),
    );
  });
  box.replaceChildren(
    el(
      "table",
      { class: "dlq" },
      el("caption", { text: `${entries.length === 1 ? "1 dead letter" : `${entries.length} dead letters`}, oldest first` }),
      el("thead", {}, el("tr", {}, ["Select", "Delivery", "Dead-lettered at", "Instance", "Message ID", "Attempts", "Reason", ""].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows),
    ),
  );
}

function updateDlqButtons() {
  const n = state.dlqSelected.size;
  const instance = $("dlq-instance").value;
  const ofInstance = state.dlqEntries.filter((e) => e.destination === instance).length;
  $("dlq-replay-selected").disabled = n === 0;
  $("dlq-purge-selected").disabled = n === 0;
  $("dlq-replay-selected").textContent = n ? `Replay ${n} selected` : "Replay selected";
  $("dlq-purge-selected").textContent = n ? `Purge ${n} selected` : "Purge selected";
  $("dlq-replay-all").disabled = !instance || !ofInstance;
  $("dlq-purge-all").disabled = !instance || !ofInstance;
  $("dlq-replay-all").textContent = instance ? `Replay all of ${instance}` : "Replay all of the instance";
  $("dlq-purge-all").textContent = instance ? `Purge all of ${instance}` : "Purge all of the instance";
}

/** Replays or purges `selection` ({ids} or {instance}) after asking. */
async function actOnDlq(action, selection, what, items) {
  const replay = action === "replay";
  const ok = await confirmAction({
    title: replay ? `Replay ${what}?` : `Purge ${what}?`,
    text: replay
      ? "Each goes back to the queue with its attempts reset, and the workers deliver it again."
      : "Each is deleted for good and cannot be replayed afterwards.",
    items,
    ok: replay ? `Replay ${what}` : `Purge ${what}`,
    danger: !replay,
  });
  if (!ok) return false;
  let data;
  try {
    data = await api(`dlq/${action}`, selection);
  } catch (err) {
    $("dlq-status").textContent = err.message;
    return false;
  }
  const n = replay ? data.replayed : data.purged;
  $("dlq-status").textContent = `${replay ? "Replayed" : "Purged"} ${n === 1 ? "1 dead letter" : `${n} dead letters`}.`;
  state.dlqSelected.clear();
  state.dlqShown = "";
  $("dlq-detail").replaceChildren();
  await refreshOverview();
  return true;
}

function selectedItems() {
  return state.dlqEntries.filter((e) => state.dlqSelected.has(e.id)).map((e) => `Delivery ${e.id} of ${e.destination}: ${e.message_id}`);
}

async function showDeadLetter(id) {
  const box = $("dlq-detail");
  let item;
  try {
    item = await api("dlq/show", { id });
  } catch (err) {
    box.replaceChildren(el("div", { class: "error-box", role: "alert", text: err.message }));
    return;
  }
  const heading = el("h3", { tabindex: "-1", id: "dlq-detail-heading" }, `Delivery ${item.id}`, " ", el("span", { class: "muted", text: item.message_id }));
  const replay = el("button", { type: "button", class: "primary" }, "Replay this event");
  const purge = el("button", { type: "button", class: "danger" }, "Purge this event");
  const close = el("button", { type: "button" }, "Close");
  const one = [`Delivery ${item.id} of ${item.destination}: ${item.message_id}`];
  replay.addEventListener("click", () => actOnDlq("replay", { ids: [item.id] }, "1 dead letter", one));
  purge.addEventListener("click", () => actOnDlq("purge", { ids: [item.id] }, "1 dead letter", one));
  close.addEventListener("click", () => {
    box.replaceChildren();
    $("dlq-heading").focus();
  });
  box.replaceChildren(
    el(
      "article",
      { class: "card detail", "aria-labelledby": "dlq-detail-heading" },
      heading,
      el(
        "dl",
        { class: "facts" },
        [
          ["Instance", item.destination],
          ["Attempts", String(item.attempts)],
          ["Enqueued", timeText(item.enqueued_at_ms)],
          ["Dead-lettered", timeText(item.dead_at_ms)],
          ["Reason", el("span", { class: "reason", text: item.reason })],
          ["Last error", item.last_error ? el("span", { class: "reason", text: item.last_error }) : "none"],
        ].flatMap(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]),
      ),
      el("h4", { text: "The event as stored" }),
      codeBlock(item.event, "The event as stored"),
      el("div", { class: "row" }, replay, purge, close),
    ),
  );
  heading.focus();
}

// ---------------------------------------------------------------------------------------------
// Start.

async function loadAll() {
  try {
    const [dests, insts] = await Promise.all([api("destinations"), api("instances")]);
    state.destinations = dests.destinations;
    state.instances = insts.instances;
  } catch (err) {
    $("instances").replaceChildren(el("p", { class: "error-box", text: err.message }));
    return;
  }
  $("token-status").textContent = "Connected.";
  try {
    state.queue = (await api("about")).queue;
  } catch (_) {
    state.queue = null;
  }
  if (state.queue === false) showNoQueue();
  if (overviewVisible()) {
    refreshOverview();
    scheduleOverview();
  }
  renderInstances();
  renderDestinations();
  $("ed-instance").replaceChildren(...state.instances.map((i) => el("option", { value: i.name, text: i.name })));
  fillActions();
}

async function loadExamples() {
  const res = await fetch("/console/examples.json");
  state.examples = await res.json();
  $("example").replaceChildren(...state.examples.map((e, idx) => el("option", { value: String(idx), text: e.label })));
  if (!$("event").value) loadExample();
}

document.addEventListener("DOMContentLoaded", () => {
  setUpTabs();
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    $("token-status").textContent = "Connecting…";
    loadAll();
  });
  $("load-example").addEventListener("click", loadExample);
  $("run-test").addEventListener("click", runTest);
  $("event").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      runTest();
    }
  });
  $("ed-instance").addEventListener("change", fillActions);
  $("ed-action").addEventListener("change", fillFields);
  for (const id of ["ed-name", "ed-trigger"]) $(id).addEventListener("input", () => schedulePreview());
  $("ed-fields").addEventListener("input", () => schedulePreview());
  $("copy-yaml").addEventListener("click", copyYaml);
  $("confirm-ok").addEventListener("click", () => closeConfirm(true));
  $("confirm-cancel").addEventListener("click", () => closeConfirm(false));
  // Escape, or the dialog closed any other way, is a no.
  $("confirm").addEventListener("close", () => closeConfirm(false));
  $("ov-refresh").addEventListener("click", () => {
    state.overviewShown = "";
    state.dlqShown = "";
    refreshOverview();
  });
  $("ov-auto").addEventListener("change", scheduleOverview);
  $("fail-instance").addEventListener("change", () => {
    if (state.overview) renderFailures(state.overview);
  });
  $("dlq-instance").addEventListener("change", () => {
    state.dlqSelected.clear();
    state.dlqShown = "";
    $("dlq-status").textContent = "";
    refreshDlq();
  });
  $("dlq-replay-selected").addEventListener("click", () => {
    const n = state.dlqSelected.size;
    actOnDlq("replay", { ids: [...state.dlqSelected] }, n === 1 ? "1 dead letter" : `${n} dead letters`, selectedItems());
  });
  $("dlq-purge-selected").addEventListener("click", () => {
    const n = state.dlqSelected.size;
    actOnDlq("purge", { ids: [...state.dlqSelected] }, n === 1 ? "1 dead letter" : `${n} dead letters`, selectedItems());
  });
  for (const action of ["replay", "purge"]) {
    $(`dlq-${action}-all`).addEventListener("click", () => {
      const instance = $("dlq-instance").value;
      actOnDlq(action, { instance }, `every dead letter of ${instance}`, [`${state.dlqEntries.length} listed here; any added meanwhile are included`]);
    });
  }
  loadExamples();
  if (sessionStorage.getItem(TOKEN_KEY)) loadAll();
});
