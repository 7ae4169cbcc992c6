// The job page: live progress and ETA from the event stream, then the job's results once it has ended.
import {
  api, ApiError, artifactUrl, el, fill, fmtBytes, fmtDuration, fmtNum, fmtSeconds, fmtTime, pageData,
  TERMINAL, wireCopyButtons,
} from "./common.js";
import { layersChart, speedChart } from "./charts.js";
import { renderSweep } from "./sweep.js";

const { id } = pageData();
const $ = (name) => document.getElementById(name);
let job = null;
let lastEvent = 0;
let source = null;
let lastProgress = null; // {eta_s, at}: the ETA counts down between events
const stages = []; // {name, at}: the start of each stage, from the stage events

async function main() {
  wireCopyButtons();
  $("cancel").addEventListener("click", cancel);
  $("delete").addEventListener("click", remove);
  job = await api(`/jobs/${id}`);
  renderState();
  await readLog();
  if (TERMINAL.has(job.state)) await renderResults();
  else {
    follow();
    if (job.kind === "sweep") {
      await renderSweep(job, $("sweep-card"));
      const timer = setInterval(() => (TERMINAL.has(job.state) ? clearInterval(timer) : renderSweep(job, $("sweep-card"))), 3000);
    }
  }
  setInterval(tick, 1000);
}

async function readLog() {
  for (;;) {
    const page = await api(`/jobs/${id}/events?after=${lastEvent}&limit=1000`);
    page.items.forEach(addEvent);
    if (page.items.length < 1000) break;
  }
  renderStages();
}

/** Live: the API's Server-Sent Events, resumed after the last event the log shows. */
function follow() {
  source = new EventSource(`/jobs/${id}/events?after=${lastEvent}`);
  for (const type of ["stage", "progress", "log"]) {
    source.addEventListener(type, (message) => {
      const event = JSON.parse(message.data);
      if (event.id <= lastEvent) return;
      addEvent(event);
      renderStages();
    });
  }
  source.addEventListener("end", async () => {
    source.close();
    source = null;
    job = await api(`/jobs/${id}`);
    renderState();
    renderStages();
    await renderResults();
  });
  source.addEventListener("error", (message) => {
    if (message.data) { // the service ended the stream (a revoked key, too many streams): say so, stop
      source.close();
      showError(JSON.parse(message.data).message);
    }
  });
}

function addEvent(event) {
  lastEvent = Math.max(lastEvent, event.id);
  const data = event.data || {};
  if (data.type === "stage") stages.push({ name: data.phase && data.phase !== "prune" ? `${data.phase}: ${data.stage}` : data.stage, at: Date.parse(event.created_at) });
  if (data.type === "stage" || data.type === "progress") {
    lastProgress = { ...data, at: Date.now() };
    if (job && !TERMINAL.has(job.state)) {
      job.state = "running";
      job.stage = data.stage;
      job.progress = data.fraction ?? job.progress;
      job.message = event.message;
      renderState();
    }
  }
  const row = el("tr", { class: `level-${event.level}`, "data-event": event.id },
    el("td", { class: "time" }, fmtTime(event.created_at)),
    el("td", {}, event.stage || ""),
    el("td", {}, event.message));
  $("events").tBodies[0].append(row);
}

function renderState() {
  const state = $("state");
  state.textContent = job.state + (job.cancel_requested && !TERMINAL.has(job.state) ? " (cancelling)" : "");
  state.className = `state state-${job.state}`;
  const fraction = TERMINAL.has(job.state) && job.state === "succeeded" ? 1 : job.progress || 0;
  $("bar").style.width = `${(100 * fraction).toFixed(1)}%`;
  $("fraction").textContent = `${Math.round(100 * fraction)}%`;
  $("stage").textContent = job.stage || (TERMINAL.has(job.state) ? "done" : "waiting for a worker");
  $("message").textContent = job.message || "";
  $("cancel").hidden = TERMINAL.has(job.state) || job.cancel_requested;
  $("delete").hidden = !TERMINAL.has(job.state);
  if (job.error) {
    $("job-error").hidden = false;
    $("job-error").textContent = `${job.error.type}: ${job.error.message}`;
  }
  tick();
}

function tick() {
  if (!job) return;
  if (TERMINAL.has(job.state)) { $("eta").textContent = job.state === "succeeded" ? "done" : "–"; return; }
  if (lastProgress && typeof lastProgress.eta_s === "number") {
    $("eta").textContent = fmtDuration(lastProgress.eta_s - (Date.now() - lastProgress.at) / 1000);
  }
}

function renderStages() {
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  const rows = stages.map((s, i) => {
    const until = i + 1 < stages.length ? stages[i + 1].at : end;
    const running = i === stages.length - 1 && !TERMINAL.has(job.state);
    return el("tr", { "data-stage": s.name }, el("td", {}, s.name), el("td", {}, fmtSeconds((until - s.at) / 1000) + (running ? " …" : "")));
  });
  fill($("stages").tBodies[0], rows);
  $("stages-card").hidden = rows.length === 0;
}

async function renderResults() {
  renderState();
  const result = job.result || {};
  const report = result.report || null;
  if (report && Array.isArray(report.layers) && report.layers.length && "heads_kept" in report.layers[0]) renderLayers(report.layers);
  if (report && report.cost) renderCost(report);
  if (report && report.speed && report.speed.measured) renderSpeed(report.speed);
  renderMetrics(job.metrics || {}, result.gate);
  renderArtifacts(job.artifacts || []);
  if (result.record) {
    $("record-block").hidden = false;
    $("record").textContent = JSON.stringify(result.record, null, 2);
  }
  if (job.kind === "sweep") await renderSweep(job, $("sweep-card"));
}

function renderLayers(layers) {
  $("layers-card").hidden = false;
  fill($("layers-chart"), layersChart(layers));
  fill($("layers").tBodies[0], layers.map((l) => el("tr", { "data-layer": l.layer },
    el("td", {}, l.layer), el("td", { class: "heads-kept" }, l.heads_kept), el("td", { class: "heads-total" }, l.heads_total),
    el("td", { class: "neurons-kept" }, l.neurons_kept), el("td", { class: "neurons-total" }, l.neurons_total))));
}

function renderCost(report) {
  $("cost-card").hidden = false;
  const { before, after } = report.cost;
  const row = (label, b, a) => el("tr", {}, el("th", {}, label), el("td", {}, fmtNum(b)), el("td", {}, fmtNum(a)),
    el("td", {}, b ? `${fmtNum(100 * (1 - a / b), 3)}%` : "–"));
  fill($("cost"),
    el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "before"), el("th", {}, "after"), el("th", {}, "removed"))),
    el("tbody", {},
      row("parameters", before.params.total, after.params.total),
      row("parameters, pruned part", before.params.pruned_part, after.params.pruned_part),
      row(`FLOPs (MACs/sequence, ${before.seq_len} tokens)`, before.flops.total, after.flops.total),
      row("FLOPs, pruned part", before.flops.pruned_part, after.flops.pruned_part)));
}

function renderSpeed(speed) {
  $("speed-card").hidden = false;
  $("speed-note").textContent = speed.note || "";
  fill($("speed-chart"), speedChart(speed.by_batch, speed.ideal_speedup));
  fill($("speed").tBodies[0], speed.by_batch.map((r) => el("tr", { class: r.noisy ? "noisy" : "" },
    el("td", {}, r.batch_size), el("td", {}, `${fmtNum(r.speedup, 3)}×${r.noisy ? " (noisy)" : ""}`),
    el("td", {}, r.speedup_ci ? `${fmtNum(r.speedup_ci[0], 3)}–${fmtNum(r.speedup_ci[1], 3)}×` : "–"),
    el("td", {}, `${fmtNum(speed.ideal_speedup, 3)}×`),
    el("td", {}, fmtNum(r.dense_latency_ms, 4)), el("td", {}, fmtNum(r.pruned_latency_ms, 4)))));
}

/** The gate's criteria, each with its figure and threshold; a failing one is marked. */
function gateRows(gate) {
  const rows = [];
  if (gate.max_metric_drop !== null && gate.max_metric_drop !== undefined) {
    const failed = !(typeof gate.metric_drop === "number" && gate.metric_drop <= gate.max_metric_drop + 1e-12);
    rows.push([`${gate.metric} drop${gate.split ? ` (${gate.split})` : ""}`, fmtNum(gate.metric_drop), `≤ ${gate.max_metric_drop}`, failed,
      `dense ${fmtNum(gate.dense_score)}, pruned ${fmtNum(gate.pruned_score)}`]);
  }
  if (gate.min_speedup !== null && gate.min_speedup !== undefined) {
    const failed = !(typeof gate.speedup === "number" && gate.speedup >= gate.min_speedup);
    rows.push(["speedup", gate.speedup === null || gate.speedup === undefined ? "none" : `${fmtNum(gate.speedup, 3)}×`,
      `≥ ${gate.min_speedup}×`, failed, gate.device ? `batch ${gate.speedup_batch_size} on ${gate.device}` : ""]);
  }
  return rows;
}

function renderMetrics(metrics, gate) {
  const splits = Object.entries(metrics);
  if (!splits.length && !gate) return;
  $("metrics-card").hidden = false;
  if (gate) {
    const verdict = $("verdict");
    verdict.hidden = false;
    verdict.className = `verdict verdict-${gate.verdict}`;
    verdict.textContent = `Gate ${gate.verdict}` + (gate.reasons && gate.reasons.length ? `: ${gate.reasons.join("; ")}` : "");
    const table = $("gate");
    table.hidden = false;
    fill(table, el("thead", {}, el("tr", {}, ["criterion", "figure", "required", "", "details"].map((h) => el("th", {}, h)))),
      el("tbody", {}, gateRows(gate).map(([name, figure, need, failed, details]) =>
        el("tr", { class: failed ? "fail" : "pass", "data-criterion": name },
          el("td", {}, name), el("td", {}, figure), el("td", {}, need), el("td", {}, failed ? "✗ failed" : "✓"), el("td", {}, details)))));
  }
  fill($("metrics"), el("thead", {}, el("tr", {}, el("th", {}, "split"), el("th", {}, "metric"), el("th", {}, "value"))),
    el("tbody", {}, splits.flatMap(([split, values]) => Object.entries(values).map(([name, value]) =>
      el("tr", {}, el("td", {}, split), el("td", {}, name), el("td", {}, fmtNum(value, 5)))))));
}

function renderArtifacts(artifacts) {
  if (!artifacts.length) return;
  $("artifacts-card").hidden = false;
  fill($("artifacts").tBodies[0], artifacts.map((a) => el("tr", { "data-artifact": a.name },
    el("td", {}, el("a", { href: artifactUrl(id, a.name), download: a.name.split("/").pop() }, a.name)),
    el("td", {}, a.kind), el("td", { class: "size", "data-bytes": a.size }, fmtBytes(a.size)),
    el("td", {}, el("code", { title: a.sha256 }, a.sha256.slice(0, 12))))));
}

function showError(message) {
  const node = $("action-error");
  node.hidden = false;
  node.textContent = message;
}

async function cancel() {
  if (!confirm("Cancel this job?")) return;
  try {
    job = await api(`/jobs/${id}/cancel`, { method: "POST" });
    renderState();
    if (TERMINAL.has(job.state)) { renderStages(); await renderResults(); }
  } catch (err) {
    showError(err instanceof ApiError ? err.message : String(err));
  }
}

async function remove() {
  if (!confirm("Delete this job and its artifacts?")) return;
  try {
    await api(`/jobs/${id}`, { method: "DELETE" });
    window.location.assign("/ui/jobs");
  } catch (err) {
    showError(err instanceof ApiError ? err.message : String(err));
  }
}

window.addEventListener("pagehide", () => { if (source) source.close(); });
main().catch((err) => showError(`The page could not load the job: ${err.message}`));
