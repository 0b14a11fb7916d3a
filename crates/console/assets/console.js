// The actionkit console's page: plain JavaScript, no framework, no build step.
//
// Every call goes to the JSON API under /console/api with the token the person entered (kept
// in this tab's session storage) as `Authorization: Bearer`. Everything from the server or the
// event is put into the page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "actionkit-console-token";
const state = { destinations: [], instances: [], examples: [], previewTimer: 0, previewSeq: 0 };

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

class ApiError extends Error {}

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
    throw new ApiError((data && data.error) || `the server answered ${res.status}`);
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
        el("p", {}, "Default trigger: ", el("code", { text: a.default_trigger })),
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
  out.replaceChildren();
  for (const inst of data.instances) {
    const matched = inst.mappings.filter((m) => m.matched && m.enabled).length;
    out.append(el("h3", {}, inst.name, " ", el("span", { class: "muted", text: matched === 1 ? "1 mapping matched" : matched ? `${matched} mappings matched` : "no enabled mapping matched: not subscribed" })));
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
  $("ed-trigger").value = existing ? existing.trigger : action.default_trigger;
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
  loadExamples();
  if (sessionStorage.getItem(TOKEN_KEY)) loadAll();
});
