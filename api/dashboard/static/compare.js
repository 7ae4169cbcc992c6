// Compare: finished jobs side by side — targets, achieved reductions, speed, metrics, and their per-layer pictures.
import { api, el, fill, fmtNum, fmtTarget, pageData, stateBadge } from "./common.js";
import { layersChart } from "./charts.js";

const { ids } = pageData();

function speedText(speed) {
  if (!speed || !speed.measured) return "–";
  const ci = speed.speedup_ci ? ` (${fmtNum(speed.speedup_ci[0], 3)}–${fmtNum(speed.speedup_ci[1], 3)})` : "";
  return speed.speedup === null ? `noisy${ci}` : `${fmtNum(speed.speedup, 3)}×${ci}`;
}

const ROWS = [
  ["state", (j) => stateBadge(j.state)],
  ["kind", (j) => j.kind],
  ["model", (j) => j.model || "–"],
  ["method", (j) => j.method || "–"],
  ["target", (j) => fmtTarget(j.target)],
  ["FLOPs removed (pruned part)", (j, r) => fmtNum(r?.achieved?.flops_reduction_pruned_part, 4)],
  ["params removed (whole model)", (j, r) => fmtNum(r?.achieved?.params_reduction_whole_model, 4)],
  ["parameters after", (j, r) => fmtNum(r?.cost?.after?.params?.total)],
  ["speedup (95% interval)", (j, r) => speedText(r?.speed)],
  ["ideal speedup", (j, r) => fmtNum(r?.speed?.ideal_speedup, 3)],
  ["metrics", (j) => Object.entries(j.metrics || {}).filter(([s]) => s !== "prune")
    .flatMap(([s, m]) => Object.entries(m).map(([k, v]) => `${s}/${k} ${fmtNum(v, 4)}`)).join(", ") || "–"],
  ["gate", (j) => j.result?.verdict || "–"],
];

async function main() {
  const table = document.getElementById("compare");
  if (ids.length < 2) {
    fill(table, el("tbody", {}, el("tr", {}, el("td", {}, "Pick two or more finished jobs."))));
  }
  if (!ids.length) return;
  const jobs = await Promise.all(ids.map((id) => api(`/jobs/${id}`)));
  fill(table,
    el("thead", {}, el("tr", {}, el("th", {}, ""), jobs.map((j) => el("th", { "data-job": j.id }, el("a", { href: `/ui/jobs/${j.id}` }, j.id.slice(0, 8)))))),
    el("tbody", {}, ROWS.map(([label, cell]) => el("tr", {}, el("th", {}, label),
      jobs.map((j) => el("td", {}, cell({ ...j, ...spec(j) }, j.result?.report)))))));
  fill(document.getElementById("compare-layers"), jobs.map((j) => {
    const layers = j.result?.report?.layers;
    const ok = Array.isArray(layers) && layers.length && "heads_kept" in layers[0];
    return el("section", { class: "card" }, el("h2", {}, `Kept per layer · ${j.id.slice(0, 8)}`),
      ok ? el("div", { class: "chart" }, layersChart(layers)) : el("p", { class: "hint" }, "no per-layer counts"));
  }));
}

/** The list's summary fields (model, method, target) from the spec, for a job read whole. */
function spec(job) {
  const s = job.spec || {};
  return { model: s.model?.id, method: s.method, target: s.target ? Object.fromEntries(Object.entries(s.target).filter(([, v]) => typeof v === "number")) : null };
}

main().catch((err) => fill(document.getElementById("compare"), el("tbody", {}, el("tr", {}, el("td", { class: "error" }, err.message)))));
