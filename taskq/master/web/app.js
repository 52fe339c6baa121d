// The taskq dashboard's live updates. The master renders the whole page (tiles, charts,
// tables) from one snapshot, so it is complete without this script; every second this
// fetches the page again and swaps those parts in, fills the queues' rates in and out
// from two snapshots' counters, and shows times in local time. #task/ID shows a task's
// attempts from /api/tasks/ID. The swapped parts come from the same server renderer as the
// first paint, which escapes every value; anything built here uses textContent only.
"use strict";

const REFRESH_MS = 1000;
const PARTS = ["summary", "figures", "charts", "workers", "queues", "jobs", "failed"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function when(t) { return t ? new Date(t * 1000).toLocaleTimeString() : "–"; }

function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    t.textContent = new Date(t.getAttribute("datetime")).toLocaleTimeString();
  }
}

function table(id, head, rows) {
  const t = document.getElementById(id);
  t.replaceChildren(el("thead", {}, el("tr", {}, ...head.map(h => el("th", { text: h })))),
                    el("tbody", {}, ...rows.map(r => el("tr", {}, ...r.map((cell, i) =>
                      cell instanceof Node ? el("td", { "data-label": head[i] }, cell)
                                           : el("td", { "data-label": head[i], text: String(cell) }))))));
}

// Rates in and out per queue: counter differences between the previous queues table and
// this one, over the time between their snapshots (data-now).
function fillRates(table, before) {
  const dt = before ? Number(table.dataset.now) - Number(before.dataset.now) : 0;
  for (const row of table.querySelectorAll("tbody tr[data-queue]")) {
    const old = before && [...before.querySelectorAll("tbody tr[data-queue]")]
      .find(r => r.dataset.queue === row.dataset.queue);
    if (!old || dt <= 0) continue;
    row.querySelector("td[data-label='in /s']").textContent =
      ((row.dataset.submitted - old.dataset.submitted) / dt).toFixed(1);
    row.querySelector("td[data-label='out /s']").textContent =
      ((row.dataset.finished - old.dataset.finished) / dt).toFixed(1);
  }
}

function swapIn(fresh) {
  const before = document.getElementById("queues");
  for (const id of PARTS) {
    const next = fresh.getElementById(id), now = document.getElementById(id);
    if (next && now) now.replaceWith(document.importNode(next, true));
  }
  fillRates(document.getElementById("queues"), before);
  localTimes(document.getElementById("overview"));
}

async function getPage() {
  const r = await fetch("/", { credentials: "same-origin", cache: "no-store" });
  if (r.redirected && new URL(r.url).pathname === "/login") {
    location.href = "/login"; throw new Error("token needed");
  }
  if (!r.ok) throw new Error(`/: ${r.status}`);
  return new DOMParser().parseFromString(await r.text(), "text/html");
}

async function refresh() {
  try {
    swapIn(await getPage());
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.ready = "1";
  } catch (e) {
    document.getElementById("updated").textContent = `error: ${e.message}`;
  }
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) { location.href = "/login"; throw new Error("token needed"); }
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

async function showTask(id) {
  const body = document.getElementById("task-body");
  try {
    const t = await getJSON(`/api/tasks/${encodeURIComponent(id)}`);
    const rows = t.attempts.map(a => [a.n, a.worker || "–", a.host || "–", a.pid || "–",
      when(a.queued), when(a.started), when(a.ended),
      el("span", { class: a.outcome === "ok" ? "outcome-ok" : "outcome-bad",
                   text: a.outcome + (a.error_type ? ` (${a.error_type})` : "") })]);
    body.replaceChildren(el("h2", { text: `task ${t.task_id}` }),
      el("p", { class: "muted", text: `job ${t.job} · queue ${t.queue} · ${t.outcome || t.state}` }),
      el("div", { class: "scroll" }, el("table", { id: "attempts", class: "fold" })),
      ...t.attempts.filter(a => a.detail && a.outcome !== "ok").map(a =>
        el("div", {}, el("h3", { text: `attempt ${a.n}: ${a.outcome}` }), el("pre", { text: a.detail }))));
    table("attempts", ["#", "worker", "host", "pid", "queued", "started", "ended", "outcome"], rows);
  } catch (e) {
    body.replaceChildren(el("p", { class: "err", text: String(e.message) }));
  }
}

function route() {
  const m = location.hash.match(/^#task\/(.+)$/);
  document.getElementById("overview").hidden = !!m;
  document.getElementById("task").hidden = !m;
  if (m) showTask(decodeURIComponent(m[1]));
}

window.addEventListener("hashchange", route);
localTimes(document.getElementById("overview"));
route();
refresh();
setInterval(() => { if (!location.hash.startsWith("#task/")) refresh(); }, REFRESH_MS);
