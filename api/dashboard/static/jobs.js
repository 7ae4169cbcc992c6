// The jobs list: filters (kept in the address), cursor pages, refreshed every few seconds while the tab is shown.
import { api, durationOf, el, fill, fmtDuration, fmtTarget, fmtTime, stateBadge, TERMINAL } from "./common.js";

const form = document.getElementById("filters");
const body = document.querySelector("#jobs tbody");
const cursors = [null]; // the cursor of each page seen; the last is the current page's
let next = null;
const selected = new Set();
const REFRESH_MS = 2000;
const PAGE_SIZE = String(Math.min(100, Math.max(1, Number(new URLSearchParams(location.search).get("limit")) || 20)));

function readFilters() {
  const params = new URLSearchParams(location.search);
  for (const name of ["state", "kind", "model", "method"]) form.elements[name].value = params.get(name) || "";
}

function query() {
  const params = new URLSearchParams();
  for (const name of ["state", "kind", "model", "method"]) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function load() {
  const params = query();
  params.set("limit", PAGE_SIZE);
  const cursor = cursors[cursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  const page = await api(`/jobs?${params}`);
  next = page.next_cursor;
  fill(body, page.items.map(row));
  document.getElementById("empty").hidden = page.items.length > 0;
  document.getElementById("older").disabled = !next;
  document.getElementById("newer").disabled = cursors.length < 2;
  document.getElementById("live").textContent = `live · updated ${new Date().toLocaleTimeString("en-GB")}`;
}

function row(job) {
  const finished = TERMINAL.has(job.state);
  const box = el("input", { type: "checkbox", "aria-label": `select ${job.id}`, disabled: !finished, checked: selected.has(job.id) });
  box.addEventListener("change", () => { box.checked ? selected.add(job.id) : selected.delete(job.id); updateCompare(); });
  return el("tr", { "data-job": job.id, "data-state": job.state },
    el("td", {}, box),
    el("td", {}, stateBadge(job.state), job.state === "running" ? el("span", { class: "hint" }, ` ${Math.round(100 * job.progress)}%`) : null),
    el("td", {}, el("a", { href: `/ui/jobs/${job.id}` }, job.kind)),
    el("td", { class: "model", title: job.model || "" }, shortModel(job.model)),
    el("td", {}, job.method || "–"),
    el("td", {}, fmtTarget(job.target)),
    el("td", {}, fmtTime(job.created_at)),
    el("td", {}, fmtDuration(durationOf(job))));
}

function shortModel(id) {
  if (!id) return "–";
  return id.startsWith("/") ? `…/${id.split("/").filter(Boolean).slice(-1)[0]}` : id;
}

function updateCompare() {
  const link = document.getElementById("compare-selected");
  const ids = [...selected];
  link.href = `/ui/compare?${ids.map((i) => `id=${encodeURIComponent(i)}`).join("&")}`;
  link.setAttribute("aria-disabled", ids.length >= 2 ? "false" : "true");
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const params = query();
  if (PAGE_SIZE !== "20") params.set("limit", PAGE_SIZE);
  history.replaceState(null, "", `${location.pathname}${params.toString() ? `?${params}` : ""}`);
  cursors.splice(1);
  load();
});
document.getElementById("older").addEventListener("click", () => { if (next) { cursors.push(next); load(); } });
document.getElementById("newer").addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); load(); } });

readFilters();
updateCompare();
load();
setInterval(() => { if (document.visibilityState === "visible") load().catch(() => {}); }, REFRESH_MS);
