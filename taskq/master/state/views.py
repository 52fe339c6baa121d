"""Read-only views of the broker's state for the page, /metrics and the CLI.

Each ``*_copy`` function runs under the broker's lock and only copies (a few rows, a few
lists of ints, references to history records); the ``render_*`` functions and the filters
work on those copies outside the lock, so that a page or a scrape never slows the broker::

    Broker.monitor()  ── lock: monitor_copy(state) ──► render_monitor(copy) ──► JSON dict
    Broker.metrics()  ── lock: metrics_copy(state) ──► dict of counters and histograms
    Broker.history()  ── lock: list(history.tasks) ──► filter, newest first ──► list of dicts

Nothing here includes a task's arguments or result: only ids, names, times, outcomes and
tracebacks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from taskq.master.state import BrokerState
from taskq.master.state.autoscale import desired_workers
from taskq.master.state.dead import DeadLetters
from taskq.master.state.history import TaskHistory, job_name
from taskq.master.state.stats import FINE, Window, percentile

JOBS_SHOWN = 200  # newest jobs (outboxes) the page lists


def monitor_copy(state: BrokerState, now: float) -> dict[str, Any]:
    """What the dashboard needs, copied (lock held)."""
    hist = state.history
    running: Counter[str] = Counter(r.msg.options.queue for r in state.leased.values())
    workers = [_worker_row(w, now, "draining" if w.draining else "active")
               for w in state.workers.values()]
    workers += [_worker_row(w, now, "lost", hist.wall() - when)
                for wid, (w, when) in hist.lost_workers.items() if wid not in state.workers]
    jobs = [{"name": job_name(name), "open": box.open, "done": box.done, "failed": box.failed,
             "waiting": len(box.results)}
            for name, box in list(state.outboxes.items())[-JOBS_SHOWN:]]
    failed = [hist.tasks[t] for t in reversed(hist.recent_failed) if t in hist.tasks]
    return {
        "now": hist.wall(now), "workers": workers, "jobs": jobs,
        "pending": dict(state.pending_by_queue), "running": dict(running),
        "waiting": state.queues.waiting_count,
        "desired": desired_workers(state.queues, state.limits, state.sizes),
        "limits": {q: (lim.rate, lim.concurrency) for q, lim in state.limits.by_queue.items()},
        "paused": sorted(state.limits.paused),
        "counters": dict(hist.stats.counters), "windows": hist.stats.copy_windows(),
        "failed": [t.as_dict() | replay_links(state.dead, t.task_id) for t in failed[:20]],
        "kept": kept_figures(state),
    }


def replay_links(dead: DeadLetters, task_id: str) -> dict[str, Any]:
    """A task's replays (``replayed_as``), the task it replays (``replay_of``), and
    whether it can be replayed now (``replayable``)."""
    letter = dead.letters.get(task_id)
    return {"replayed_as": list(letter.replayed_as) if letter is not None else [],
            "replay_of": dead.origin.get(task_id, ""),
            "replayable": letter is not None and not letter.expired}


def _worker_row(w: Any, now: float, state: str, ago: float | None = None) -> dict[str, Any]:
    return {"worker_id": w.worker_id, "host": w.host, "pid": w.pid, "procs": w.procs,
            "busy": w.running, "held": len(w.held), "done": w.done, "failed": w.failed,
            "seen_ago": round(now - w.last_seen if ago is None else ago, 3), "state": state,
            "queues": list(w.queues), "memory": w.memory}


def render_monitor(copy: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON from a ``monitor_copy`` (no lock needed)."""
    windows: list[Window] = copy.pop("windows")
    counters = copy.pop("counters")
    limits = copy.pop("limits")
    desired = copy.pop("desired")
    paused = set(copy.pop("paused"))
    queues = sorted({*copy["pending"], *copy["running"], *(k[1] for k in counters), *limits,
                     *paused})
    copy["queues"] = [{
        "name": q, "depth": copy["pending"].get(q, 0), "running": copy["running"].get(q, 0),
        "submitted": counters.get(("submitted", q, ""), 0),
        "finished": sum(n for k, n in counters.items() if k[0] == "finished" and k[1] == q),
        # limits: tasks a second and tasks leased at once; 0 is no limit
        "rate": limits.get(q, (0.0, 0))[0], "concurrency": limits.get(q, (0.0, 0))[1],
        # workers that would run all it could run now (taskq_desired_workers)
        "desired_workers": desired.get(q, 0),
        "paused": q in paused,  # it leases nothing until resumed (taskq queue resume)
    } for q in queues]
    copy["series"] = [{
        "start": w.start, "submitted": w.submitted, "done": w.done, "failed": w.failed,
        # the same percentiles as the 15-minute figures below, per minute
        "wait_p50": percentile(w.wait, 0.5), "wait_p99": percentile(w.wait, 0.99),
        "run_p50": percentile(w.run, 0.5), "run_p99": percentile(w.run, 0.99),
    } for w in windows]
    wait = _sum_bins([w.wait for w in windows])
    run = _sum_bins([w.run for w in windows])
    copy["percentiles"] = {f"{name}_p{int(q * 100)}": percentile(bins, q)
                           for name, bins in (("wait", wait), ("run", run))
                           for q in (0.5, 0.9, 0.99)}
    copy["totals"] = {"done": sum(w.done for w in windows),
                      "failed": sum(w.failed for w in windows)}
    return copy


def _sum_bins(lists: list[list[int]]) -> list[int]:
    out = [0] * (len(FINE) + 1)
    for bins in lists:
        for i, n in enumerate(bins):
            out[i] += n
    return out


def metrics_copy(state: BrokerState) -> dict[str, Any]:
    """Counters, gauges and histograms for /metrics (lock held)."""
    stats = state.history.stats
    running: Counter[str] = Counter(r.msg.options.queue for r in state.leased.values())
    lost = sum(1 for w in state.history.lost_workers if w not in state.workers)
    draining = sum(1 for w in state.workers.values() if w.draining)
    return {
        "counters": dict(stats.counters),
        "depth": dict(state.pending_by_queue), "running": dict(running),
        "desired": desired_workers(state.queues, state.limits, state.sizes),
        "paused": sorted(state.limits.paused),
        "workers": {"active": len(state.workers) - draining, "draining": draining,
                    "lost": lost},
        "wait": {q: h.copy() for q, h in stats.wait.items()},
        "run": {q: h.copy() for q, h in stats.run.items()},
        "kept": kept_figures(state),
    }


def kept_figures(state: BrokerState) -> dict[str, int]:
    """Results kept by id for their result_ttl: how many, and their bodies' bytes."""
    return {"results": len(state.retained.results), "bytes": state.retained.bytes}


def history_refs(state: BrokerState) -> list[TaskHistory]:
    """References to every task's history, oldest end first (lock held: a C-level copy)."""
    return list(state.history.tasks.values())


def select(tasks: list[TaskHistory], job: str | None, failed: bool, since: float | None,
           limit: int) -> list[dict[str, Any]]:
    """Tasks matching the filters, newest first, at most ``limit`` (no lock needed)."""
    out: list[dict[str, Any]] = []
    for task in reversed(tasks):
        if job is not None and task.job != job:
            continue
        if failed and task.outcome in ("", "ok"):
            continue
        if since is not None and task.outcome and task.ended < since:
            continue
        out.append(task.as_dict())
        if len(out) >= limit:
            break
    return out


def task_state(state: BrokerState, task_id: str) -> str:
    """Where a task is now (lock held): queued, waiting, leased, running, or ended."""
    rec = state.tasks.get(task_id)
    if rec is None:
        return "ended"
    if rec.started:
        return "running"
    return {"pending": "queued"}.get(rec.state.value, rec.state.value)
