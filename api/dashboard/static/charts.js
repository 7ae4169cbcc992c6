// Hand-drawn SVG charts: kept units per layer, speedup per batch size, a sweep's trade-off with its Pareto front.
import { fmtNum, svg } from "./common.js";

const PAD = { left: 66, right: 20, top: 18, bottom: 42 };

function frame(width, height, label) {
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "plot", role: "img", "aria-label": label });
}

function ticks(lo, hi, n = 5) {
  if (hi === lo) return [lo];
  const step = (hi - lo) / n;
  return Array.from({ length: n + 1 }, (_, i) => lo + i * step);
}

function padRange(values, fallback = [0, 1]) {
  const finite = values.filter((v) => typeof v === "number" && isFinite(v));
  if (!finite.length) return fallback;
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi === lo) { lo -= 0.5 * Math.abs(lo || 1) * 0.1 + 0.05; hi += 0.5 * Math.abs(hi || 1) * 0.1 + 0.05; }
  const margin = (hi - lo) * 0.08;
  return [lo - margin, hi + margin];
}

function axes(root, width, height, x, y, xr, yr, xLabel, yLabel) {
  const g = svg("g", { class: "axes" });
  g.append(svg("line", { x1: PAD.left, y1: height - PAD.bottom, x2: width - PAD.right, y2: height - PAD.bottom }));
  g.append(svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: height - PAD.bottom }));
  for (const t of ticks(...yr, 4)) {
    g.append(svg("text", { x: PAD.left - 6, y: y(t) + 4, "text-anchor": "end", class: "tick" }, fmtNum(t, 3)));
    g.append(svg("line", { x1: PAD.left, x2: width - PAD.right, y1: y(t), y2: y(t), class: "grid" }));
  }
  if (xr) {
    for (const t of ticks(...xr, 4)) {
      g.append(svg("text", { x: x(t), y: height - PAD.bottom + 16, "text-anchor": "middle", class: "tick" }, fmtNum(t, 3)));
    }
  }
  g.append(svg("text", { x: (PAD.left + width - PAD.right) / 2, y: height - 6, "text-anchor": "middle", class: "label" }, xLabel));
  g.append(svg("text", { x: 12, y: PAD.top + (height - PAD.top - PAD.bottom) / 2, "text-anchor": "middle", class: "label",
    transform: `rotate(-90 12 ${PAD.top + (height - PAD.top - PAD.bottom) / 2})` }, yLabel));
  root.append(g);
}

/** One row per layer: attention units and FFN neurons kept, each as a bar against the layer's total. */
export function layersChart(layers) {
  const rowH = 34;
  const width = 640;
  const labelW = 70;
  const height = layers.length * rowH + 30;
  const root = frame(width, height, "kept heads and neurons per layer");
  const barW = (width - labelW - 110) / 2;
  root.append(svg("text", { x: labelW, y: 14, class: "label" }, "attention units"));
  root.append(svg("text", { x: labelW + barW + 55, y: 14, class: "label" }, "FFN neurons"));
  layers.forEach((l, i) => {
    const y = 24 + i * rowH;
    root.append(svg("text", { x: 4, y: y + 16, class: "tick" }, `layer ${l.layer}`));
    const parts = [[l.heads_kept, l.heads_total, labelW, "heads"], [l.neurons_kept, l.neurons_total, labelW + barW + 55, "neurons"]];
    for (const [kept, total, x0, kind] of parts) {
      const share = total ? kept / total : 0;
      root.append(svg("rect", { x: x0, y, width: barW, height: 20, class: "bar-total" }));
      root.append(svg("rect", { x: x0, y, width: barW * share, height: 20, class: `bar-kept bar-${kind}`,
        "data-layer": l.layer, "data-kind": kind, "data-kept": kept, "data-total": total }));
      root.append(svg("text", { x: x0 + barW + 4, y: y + 15, class: "tick" }, `${kept}/${total}`));
    }
  });
  return root;
}

/** Speedup per batch size: the measured ratio with its 95% interval, against the ideal (FLOPs) speedup. */
export function speedChart(rows, ideal) {
  const width = 640;
  const height = 260;
  const root = frame(width, height, "measured speedup per batch size");
  const values = rows.flatMap((r) => [r.speedup, ...(r.speedup_ci || [])]).concat([ideal, 1]);
  const yr = padRange(values);
  const n = rows.length;
  const x = (i) => PAD.left + ((i + 0.5) / n) * (width - PAD.left - PAD.right);
  const y = (v) => height - PAD.bottom - ((v - yr[0]) / (yr[1] - yr[0])) * (height - PAD.top - PAD.bottom);
  axes(root, width, height, x, y, null, yr, "batch size", "speedup (×)");
  if (typeof ideal === "number" && isFinite(ideal)) {
    root.append(svg("line", { x1: PAD.left, x2: width - PAD.right, y1: y(ideal), y2: y(ideal), class: "ideal" }));
    root.append(svg("text", { x: width - PAD.right, y: y(ideal) - 4, "text-anchor": "end", class: "tick" }, `ideal ${fmtNum(ideal, 3)}×`));
  }
  root.append(svg("line", { x1: PAD.left, x2: width - PAD.right, y1: y(1), y2: y(1), class: "unity" }));
  rows.forEach((r, i) => {
    root.append(svg("text", { x: x(i), y: height - PAD.bottom + 16, "text-anchor": "middle", class: "tick" }, String(r.batch_size)));
    if (r.speedup_ci) {
      const [lo, hi] = r.speedup_ci;
      root.append(svg("line", { x1: x(i), x2: x(i), y1: y(lo), y2: y(hi), class: "whisker" }));
      root.append(svg("line", { x1: x(i) - 6, x2: x(i) + 6, y1: y(lo), y2: y(lo), class: "whisker" }));
      root.append(svg("line", { x1: x(i) - 6, x2: x(i) + 6, y1: y(hi), y2: y(hi), class: "whisker" }));
    }
    if (typeof r.speedup === "number") {
      root.append(svg("circle", { cx: x(i), cy: y(r.speedup), r: 5, class: r.noisy ? "point noisy" : "point" },
        svg("title", {}, `batch ${r.batch_size}: ${fmtNum(r.speedup, 3)}×${r.noisy ? " (noisy)" : ""}`)));
    }
  });
  return root;
}

/** Indices of the points no other point beats on both axes (xBetter/yBetter: +1 higher is better, -1 lower). */
export function paretoFront(points, xBetter, yBetter) {
  return points.map((p, i) => !points.some((q, j) => j !== i
    && xBetter * q.x >= xBetter * p.x && yBetter * q.y >= yBetter * p.y
    && (xBetter * q.x > xBetter * p.x || yBetter * q.y > yBetter * p.y)));
}

/** A sweep: one linked point per child, x error bars where an interval was measured, the Pareto front joined. */
export function sweepChart(points, { xLabel, yLabel, xBetter, yBetter }) {
  const width = 640;
  const height = 320;
  const root = frame(width, height, "sweep trade-off");
  const xr = padRange(points.flatMap((p) => [p.x, p.xLow, p.xHigh]));
  const yr = padRange(points.map((p) => p.y));
  const x = (v) => PAD.left + ((v - xr[0]) / (xr[1] - xr[0])) * (width - PAD.left - PAD.right);
  const y = (v) => height - PAD.bottom - ((v - yr[0]) / (yr[1] - yr[0])) * (height - PAD.top - PAD.bottom);
  axes(root, width, height, x, y, xr, yr, xLabel, yLabel);
  const front = paretoFront(points, xBetter, yBetter);
  const frontPts = points.filter((_, i) => front[i]).sort((a, b) => a.x - b.x);
  if (frontPts.length > 1) {
    root.append(svg("polyline", { points: frontPts.map((p) => `${x(p.x)},${y(p.y)}`).join(" "), class: "front" }));
  }
  points.forEach((p, i) => {
    if (typeof p.xLow === "number" && typeof p.xHigh === "number") {
      root.append(svg("line", { x1: x(p.xLow), x2: x(p.xHigh), y1: y(p.y), y2: y(p.y), class: "whisker" }));
    }
    const cls = `point${front[i] ? " pareto" : ""}${p.estimated ? " estimated" : ""}`;
    root.append(svg("a", { href: p.href, class: "sweep-point", "data-job": p.job, "data-pareto": front[i] ? "1" : "0" },
      svg("circle", { cx: x(p.x), cy: y(p.y), r: front[i] ? 7 : 5, class: cls },
        svg("title", {}, p.title)),
      svg("text", { x: x(p.x) + 9, y: y(p.y) - 8, class: "tick" }, p.label)));
  });
  return root;
}
