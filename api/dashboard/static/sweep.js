// A sweep: quality against speedup (or remaining weights) for every child, the Pareto front marked, points linked.
import { api, el, fill, fmtNum, stateBadge } from "./common.js";
import { sweepChart } from "./charts.js";

const Y_FALLBACK = [
  ["flops_reduction", "achieved FLOPs reduction (attention + FFN)", 1],
  ["train_loss", "final training loss of the method", -1],
  ["params_reduction", "achieved parameter reduction (pruned matrices)", 1],
];

/** The axes the service's own plot uses (worker/sweep_runs.py): x, its label and direction; y likewise. */
export function sweepAxes(rows, xAxis) {
  const done = rows.filter((r) => r.state === "succeeded");
  const x = xAxis === "remaining_weights"
    ? { key: "remaining_weights", label: "remaining weights (fraction of the prunable weights kept)", better: -1 }
    : { key: "speedup", label: "speedup (measured; hollow: ideal, where the measurement was noisy)", better: 1 };
  const scored = done.find((r) => r.metric && typeof r.metric_value === "number");
  let y;
  if (scored) {
    y = { key: "metric_value", label: `${scored.metric} (${scored.metric_split || ""})`, better: /perplexity|loss/.test(scored.metric) ? -1 : 1 };
  } else {
    const [key, label, better] = Y_FALLBACK.find(([k]) => done.some((r) => typeof r[k] === "number")) || Y_FALLBACK[0];
    y = { key, label, better };
  }
  return { x, y };
}

/** One point per succeeded child; a noisy speedup is placed at the ideal one and drawn hollow. */
export function sweepPoints(rows, axes) {
  return rows.filter((r) => r.state === "succeeded").map((r) => {
    let xv = r[axes.x.key];
    let estimated = false;
    if (axes.x.key === "speedup" && typeof xv !== "number") { xv = r.ideal_speedup; estimated = true; }
    return {
      x: xv, y: r[axes.y.key], xLow: estimated ? null : r.speedup_low, xHigh: estimated ? null : r.speedup_high,
      estimated, job: r.job_id, href: `/ui/jobs/${r.job_id}`, label: fmtNum(r.target, 3),
      title: `target ${r.target}: ${axes.x.key} ${fmtNum(xv, 3)}${estimated ? " (ideal)" : ""}, ${axes.y.key} ${fmtNum(r[axes.y.key], 4)}`,
    };
  }).filter((p) => typeof p.x === "number" && typeof p.y === "number");
}

async function children(jobId) {
  const out = [];
  let cursor = null;
  do {
    const page = await api(`/jobs?parent=${jobId}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

export async function renderSweep(job, card) {
  card.hidden = false;
  const result = job.result || {};
  const rows = Array.isArray(result.table) ? result.table : null;
  const chart = card.querySelector("#sweep-chart");
  const table = card.querySelector("#sweep-table");
  if (!rows) { // still running (or it ended without a table): the children as they stand
    const kids = await children(job.id);
    fill(chart);
    fill(table, el("thead", {}, el("tr", {}, ["child", "state", "target", "progress"].map((h) => el("th", {}, h)))),
      el("tbody", {}, kids.map((k) => el("tr", {}, el("td", {}, el("a", { href: `/ui/jobs/${k.id}` }, k.id.slice(0, 8))),
        el("td", {}, stateBadge(k.state)), el("td", {}, fmtNum(Object.values(k.target || {})[0], 3)),
        el("td", {}, `${Math.round(100 * (k.progress || 0))}%`)))));
    return;
  }
  const axes = sweepAxes(rows, result.x_axis);
  const points = sweepPoints(rows, axes);
  card.querySelector("#sweep-axes").textContent = `${axes.y.label} against ${axes.x.label}; the Pareto front is joined and drawn larger. Each point opens its job.`;
  fill(chart, sweepChart(points, { xLabel: axes.x.label, yLabel: axes.y.label, xBetter: axes.x.better, yBetter: axes.y.better }));
  fill(table, el("thead", {}, el("tr", {}, ["target", "state", axes.x.key, axes.y.key, "job"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", { class: r.state === "succeeded" ? "" : "fail" },
      el("td", {}, fmtNum(r.target, 3)), el("td", {}, stateBadge(r.state)),
      el("td", {}, fmtNum(r[axes.x.key] ?? (axes.x.key === "speedup" ? r.ideal_speedup : null), 3)),
      el("td", {}, fmtNum(r[axes.y.key], 4)),
      el("td", {}, el("a", { href: `/ui/jobs/${r.job_id}` }, r.job_id.slice(0, 8)), r.error ? ` ${r.error}` : "")))));
}
