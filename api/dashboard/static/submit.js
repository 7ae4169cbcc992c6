// The submit form, built from GET /methods and GET /tasks; the service validates the spec and names the field at fault.
import { api, ApiError, el, fill } from "./common.js";

const form = document.getElementById("submit-form");
const kindSelect = document.getElementById("f-kind");
const methodSelect = document.getElementById("f-method");
let methods = [];
let tasks = [];

/** A labelled input whose data-field is the spec path it fills (and where the service's errors land). */
function field(path, label, input, hint) {
  input.id = `f-${path.replaceAll(".", "-")}`;
  input.dataset.field = path;
  return el("div", { class: "row", "data-row": path },
    el("label", { for: input.id }, label), input,
    hint ? el("span", { class: "hint" }, hint) : null,
    el("span", { class: "field-error", role: "alert", hidden: true }));
}

function text(value = "", placeholder = "") { return el("input", { type: "text", value, placeholder }); }
function number(value = "", step = "any") { return el("input", { type: "number", value, step, inputmode: "decimal" }); }
function select(options, value) {
  return el("select", {}, options.map((o) => el("option", { value: o, selected: o === value }, o)));
}

function method() { return methods.find((m) => m.name === methodSelect.value) || methods[0]; }
function task(name) { return tasks.find((t) => t.name === name); }

/** What the user typed, by spec path: a re-rendered form (another kind, method or task) keeps it. */
function typed() {
  return Object.fromEntries([...form.querySelectorAll("[data-field]")].map((n) => [n.dataset.field, n.value]));
}

function restore(values) {
  for (const node of form.querySelectorAll("[data-field]")) {
    const value = values[node.dataset.field];
    if (value === undefined) continue;
    if (node.tagName === "SELECT" && ![...node.options].some((o) => o.value === value)) continue;
    node.value = value;
  }
}

function renderCore() {
  const before = typed();
  const kind = kindSelect.value;
  const m = method();
  const targets = (m?.targets || ["flops", "params"]).map((t) => `${t}_reduction`);
  const core = document.getElementById("core");
  const taskSelect = select(tasks.map((t) => t.name), "sst2");
  taskSelect.addEventListener("change", () => renderTaskFields());
  const rows = [
    el("legend", {}, "Model, task and target"),
    field("model.id", "Model", text("", "hub id (org/name) or an allowed local folder")),
    field("task.name", "Task", taskSelect),
    el("div", { id: "task-fields" }),
    field("target.kind", "Target", select(targets, targets[0])),
  ];
  if (kind === "sweep") {
    rows.push(field("targets", "Target values", text("0.2, 0.3, 0.4"), "comma-separated; one child job each"));
  } else {
    rows.push(field("target.value", "Target value", number("0.3"), "fraction to remove, 0–1"));
  }
  if (kind === "pipeline") {
    rows.push(field("finetune.epochs", "Fine-tune epochs", number("1", "1")));
    rows.push(field("accept.max_metric_drop", "Gate: max metric drop", number(""), "optional"));
    rows.push(field("accept.min_speedup", "Gate: min speedup", number(""), "optional"));
  }
  rows.push(field("seed", "Seed", number("", "1"), "optional"));
  rows.push(field("extra", "More fields (JSON)", el("textarea", { rows: 3, placeholder: '{"measure": {"batch_sizes": [1, 8]}}' }),
    "optional: merged into the spec"));
  fill(core, rows);
  restore(before);
  renderTaskFields(before);
  document.getElementById("method-summary").textContent = m ? `${m.summary} (${m.kind}; data: ${m.data})` : "";
}

function renderTaskFields(before = typed()) {
  const t = task(document.getElementById("f-task-name").value);
  const rows = [];
  for (const [name, description] of Object.entries({ ...(t?.required_fields || {}), ...(t?.optional_fields || {}) })) {
    if (name === "data_files") {
      rows.push(field("task.data_files.train", "Train file", text("", "absolute path under an allowed root"), description));
      rows.push(field("task.data_files.validation", "Validation file", text(""), "optional"));
    } else {
      rows.push(field(`task.${name}`, name, text(""), typeof description === "string" ? description : ""));
    }
  }
  fill(document.getElementById("task-fields"), rows);
  restore(before);
}

function renderParams() {
  const m = method();
  const legend = el("legend", {}, `Parameters of ${m?.name || "the method"} (empty: the default)`);
  const rows = (m?.parameters || []).map((p) => {
    let input;
    if (p.choices) input = select(["", ...p.choices.map(String)], "");
    else if (p.type === "boolean") input = select(["", "true", "false"], "");
    else if (p.type === "number" || p.type === "integer") input = number("", p.type === "integer" ? "1" : "any");
    else input = text("");
    input.placeholder = p.default === null || p.default === undefined ? "" : String(p.default);
    const range = [p.minimum !== undefined ? `≥ ${p.minimum}` : null, p.maximum !== undefined ? `≤ ${p.maximum}` : null].filter(Boolean).join(", ");
    return field(`params.${p.name}`, p.name, input, [p.description, range, p.default !== undefined && p.default !== null ? `default ${p.default}` : ""].filter(Boolean).join(" · "));
  });
  fill(document.getElementById("params"), legend, rows);
}

function value(path) {
  const node = form.querySelector(`[data-field="${path}"]`);
  return node ? node.value.trim() : "";
}

function setPath(obj, path, v) {
  const parts = path.split(".");
  let at = obj;
  for (const p of parts.slice(0, -1)) at = at[p] ??= {};
  at[parts[parts.length - 1]] = v;
}

function parseValue(raw, type) {
  if (type === "number" || type === "integer") return raw === "" ? raw : Number(raw);
  if (type === "boolean") return raw === "true";
  return raw;
}

/** The spec the form describes; numbers stay numbers, empty optional fields stay out. */
function buildSpec() {
  const kind = kindSelect.value;
  const spec = { kind, method: methodSelect.value, model: { id: value("model.id") }, task: { name: value("task.name") } };
  for (const node of form.querySelectorAll('[data-field^="task."]')) {
    const path = node.dataset.field;
    if (path !== "task.name" && node.value.trim()) setPath(spec, path, node.value.trim());
  }
  const targetKind = value("target.kind");
  if (kind === "sweep") {
    const raw = value("targets");
    spec.targets = { [targetKind]: raw ? raw.split(",").map((s) => Number(s.trim())) : [] };
  } else {
    const raw = value("target.value");
    spec.target = { [targetKind]: raw === "" ? null : Number(raw) };
  }
  if (kind === "pipeline") {
    spec.finetune = value("finetune.epochs") ? { epochs: Number(value("finetune.epochs")) } : {};
    const accept = {};
    for (const k of ["max_metric_drop", "min_speedup"]) if (value(`accept.${k}`)) accept[k] = Number(value(`accept.${k}`));
    if (Object.keys(accept).length) spec.accept = accept;
  }
  if (value("seed")) spec.seed = Number(value("seed"));
  const params = {};
  for (const p of method()?.parameters || []) {
    const raw = value(`params.${p.name}`);
    if (raw !== "") params[p.name] = parseValue(raw, p.choices ? typeof p.choices[0] : p.type);
  }
  if (Object.keys(params).length) spec.params = params;
  const extra = value("extra");
  if (extra) {
    let parsed;
    try { parsed = JSON.parse(extra); } catch (err) { throw new ApiError(422, { error: { message: `not JSON: ${err.message}`, field: "extra" } }); }
    for (const [k, v] of Object.entries(parsed)) {
      spec[k] = v && typeof v === "object" && !Array.isArray(v) && spec[k] && typeof spec[k] === "object" ? { ...spec[k], ...v } : v;
    }
  }
  return spec;
}

function clearErrors() {
  for (const node of form.querySelectorAll(".field-error")) { node.hidden = true; node.textContent = ""; }
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  document.getElementById("form-error").hidden = true;
}

/** Show the service's error at the input of its field (the longest matching path), else above the button. */
function showError(err) {
  const fieldPath = err.field || "";
  const candidates = [...form.querySelectorAll("[data-field]")].map((n) => n.dataset.field);
  let path = fieldPath; // the form has one input for the target's value, whatever its name
  if (path.startsWith("target.") || path === "target") path = "target.value";
  if (path.startsWith("targets")) path = "targets";
  const match = candidates.filter((c) => path === c || path.startsWith(`${c}.`)).sort((a, b) => b.length - a.length)[0];
  const general = document.getElementById("form-error");
  general.hidden = false;
  general.textContent = fieldPath ? `${fieldPath}: ${err.message}` : err.message;
  if (match) {
    const row = form.querySelector(`[data-row="${match}"]`);
    const note = row.querySelector(".field-error");
    note.hidden = false;
    note.textContent = `${fieldPath}: ${err.message}`;
    row.querySelector("[data-field]").setAttribute("aria-invalid", "true");
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const button = document.getElementById("submit-button");
  button.disabled = true;
  try {
    const job = await api("/jobs", { method: "POST", body: buildSpec() });
    window.location.assign(`/ui/jobs/${job.id}`);
  } catch (err) {
    showError(err instanceof ApiError ? err : { message: String(err) });
    button.disabled = false;
  }
});

async function main() {
  [methods, tasks] = await Promise.all([api("/methods").then((r) => r.items), api("/tasks").then((r) => r.items)]);
  fill(methodSelect, methods.map((m) => el("option", { value: m.name, selected: m.name === "ppruning" }, m.name)));
  kindSelect.addEventListener("change", () => { renderCore(); });
  methodSelect.addEventListener("change", () => { renderCore(); renderParams(); });
  renderCore();
  renderParams();
}

main().catch((err) => showError({ message: `The form could not load the service's schemas: ${err.message}` }));
