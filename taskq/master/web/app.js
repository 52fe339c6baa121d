// The taskq dashboard: polls /api/status every second and draws it; #task/ID shows a
// task's attempts from /api/tasks/ID. Only text and numbers the master serves: no task's
// arguments or result. Plain DOM (textContent only, never innerHTML with data), no library.
"use strict";

const REFRESH_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
                                       : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function secs(v) {
  if (v === null || v === undefined) return "–";
  return v < 1 ? `${(v * 1000).toFixed(v < 0.01 ? 1 : 0)} ms` : `${v.toFixed(2)} s`;
}

function bytes(n) {
  if (!n) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function limit(v, unit) { return v ? `${Number(v.toFixed(3))}${unit}` : "no limit"; }

function when(t) { return t ? new Date(t * 1000).toLocaleTimeString() : "–"; }

function table(id, head, rows) {
  const t = document.getElementById(id);
  t.replaceChildren(el("thead", {}, el("tr", {}, ...head.map(h => el("th", { text: h })))),
                    el("tbody", {}, ...rows.map(r => el("tr", {}, ...r.map(cell =>
                      cell instanceof Node ? el("td", {}, cell) : el("td", { text: String(cell) }))))));
}

function drawWorkers(s) {
  table("workers", ["worker", "host", "pid", "pool", "busy", "done", "failed", "memory", "heartbeat", "state"],
    s.workers.map(w => [w.worker_id, w.host, w.pid, w.procs, w.busy, w.done, w.failed, bytes(w.memory),
      `${w.seen_ago.toFixed(1)} s ago`, el("span", { class: `state-${w.state}`, text: w.state })]));
}

let previous = null;  // the last snapshot: rates are counter deltas between two polls

function perSecond(s, q, key) {
  const before = previous && previous.queues.find(p => p.name === q.name);
  const dt = previous ? s.now - previous.now : 0;
  return before && dt > 0 ? ((q[key] - before[key]) / dt).toFixed(1) : "–";
}

function drawQueues(s) {
  table("queues", ["queue", "depth", "running", "in /s", "out /s", "submitted", "finished",
                   "rate limit", "concurrency limit"],
    s.queues.map(q => [q.name, q.depth, q.running, perSecond(s, q, "submitted"),
      perSecond(s, q, "finished"), q.submitted, q.finished, limit(q.rate, " /s"),
      limit(q.concurrency, "")]));
  previous = s;
}

function drawJobs(s) {
  table("jobs", ["job", "progress", "done", "failed", "open", "results waiting"],
    s.jobs.slice().reverse().map(j => {
      const total = j.done + j.failed + j.open;
      const bar = el("progress", { max: String(total || 1), value: String(j.done + j.failed),
                                   "data-job": j.name });
      return [j.name, bar, j.done, j.failed, j.open, j.waiting];
    }));
}

function drawFigures(s) {
  const p = s.percentiles;
  const items = [["workers", s.workers.filter(w => w.state !== "lost").length],
    ["queued", s.queues.reduce((a, q) => a + q.depth, 0)],
    ["running", s.queues.reduce((a, q) => a + q.running, 0)],
    ["done (15 min)", s.totals.done], ["failed (15 min)", s.totals.failed],
    ["wait p50 / p99", `${secs(p.wait_p50)} / ${secs(p.wait_p99)}`],
    ["run p50 / p99", `${secs(p.run_p50)} / ${secs(p.run_p99)}`]];
  document.getElementById("figures").replaceChildren(...items.map(([k, v]) =>
    el("div", { class: "figure" }, el("b", { text: String(v) }), el("span", { class: "muted", text: k }))));
}

function drawRate(s) {
  const svg = document.getElementById("chart-rate");
  const n = 15, w = 300 / n, max = Math.max(1, ...s.series.map(x => x.done + x.failed));
  const now = Math.floor(s.now / 60) * 60;
  const kids = [el("svg:line", { class: "axis", x1: 0, y1: 100, x2: 300, y2: 100 }),
                el("svg:text", { x: 2, y: 8, text: `${max}/min` })];
  for (const x of s.series) {
    const i = n - 1 - Math.round((now - x.start) / 60);
    if (i < 0) continue;
    const hOk = 90 * x.done / max, hBad = 90 * x.failed / max;
    kids.push(el("svg:rect", { class: "ok", x: i * w + 1, y: 100 - hOk, width: w - 2, height: hOk }));
    kids.push(el("svg:rect", { class: "bad", x: i * w + 1, y: 100 - hOk - hBad, width: w - 2, height: hBad }));
  }
  svg.replaceChildren(...kids);
}

function drawLatency(s) {
  const svg = document.getElementById("chart-lat");
  const vals = s.series.flatMap(x => [x.wait_p95, x.run_p95]).filter(v => v !== null);
  const max = Math.max(0.001, ...vals), now = Math.floor(s.now / 60) * 60;
  const kids = [el("svg:line", { class: "axis", x1: 0, y1: 100, x2: 300, y2: 100 }),
                el("svg:text", { x: 2, y: 8, text: `${secs(max)}  wait (blue) run (amber)` })];
  for (const [key, cls] of [["wait_p50", "wait"], ["wait_p95", "wait dash"],
                            ["run_p50", "run"], ["run_p95", "run dash"]]) {
    const pts = s.series.filter(x => x[key] !== null).map(x => {
      const i = 14 - Math.round((now - x.start) / 60);
      return [i * 20 + 10, 100 - 90 * x[key] / max];
    });
    if (pts.length) kids.push(el("svg:polyline", { class: cls, points: pts.map(p => p.join(",")).join(" ") }));
    for (const [x, y] of pts) kids.push(el("svg:circle", { class: `${cls} dot`, cx: x, cy: y, r: 2 }));
  }
  svg.replaceChildren(...kids);
}

function drawFailed(s) {
  const box = document.getElementById("failed");
  if (!s.failed.length) { box.replaceChildren(el("p", { class: "muted", text: "none" })); return; }
  box.replaceChildren(...s.failed.map(t => {
    const last = t.attempts[t.attempts.length - 1] || {};
    return el("div", { class: "failed-task" },
      el("a", { href: `#task/${encodeURIComponent(t.task_id)}`, text: t.task_id }),
      el("span", { class: "muted", text: ` job ${t.job} · ${t.outcome}${last.error_type ? " (" + last.error_type + ")" : ""} · ${when(t.ended)}` }),
      el("pre", { class: "traceback", text: last.detail || "" }));
  }));
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) { location.href = "/login"; throw new Error("token needed"); }
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

async function refresh() {
  try {
    const s = await getJSON("/api/status");
    document.getElementById("summary").textContent =
      `${s.workers.filter(w => w.state !== "lost").length} worker(s) · up ${Math.round(s.uptime)} s · ${s.durable ? "durable" : "in-memory"}`;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    drawFigures(s); drawRate(s); drawLatency(s); drawWorkers(s); drawQueues(s); drawJobs(s); drawFailed(s);
    document.body.dataset.ready = "1";
  } catch (e) {
    document.getElementById("updated").textContent = `error: ${e.message}`;
  }
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
      el("div", { class: "scroll" }, el("table", { id: "attempts" })),
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
route();
refresh();
setInterval(() => { if (!location.hash.startsWith("#task/")) refresh(); }, REFRESH_MS);
