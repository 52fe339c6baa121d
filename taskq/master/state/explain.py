"""Why a task is where it is: ``taskq explain TASK_ID``, answered from the broker's state.

Pure and read-only (runs under the broker's lock; a scan of one queue at most)::

    explain(state, id) ── a live task? ── blocked: each dependency not ended, and where
                       │                 ├ waiting (delayed, retry, restart hold)
                       │                 ├ pending: blockers in order (no worker, limits,
                       │                 │          resources, busy) and tasks ahead of it
                       │                 └ leased: on worker W, begun or not, since when,
                       │                           its progress, a stop asked
                       ├ a unique key's alias ──► the task it joined
                       └ history / an outbox ──► ended (how, when, where), or unknown

Every answer has a kind, a one-line summary, the reasons in the order they apply, and
the facts behind them (for ``--json``). Times are wall-clock seconds since the epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskq.master.state import unloadable
from taskq.master.state.history import TaskHistory, job_name
from taskq.master.state.records import TaskRecord
from taskq.master.state.resources import describe
from taskq.protocol.messages import TaskState
from taskq.protocol.progress import describe_progress
from taskq.protocol.replies import ExplainKind, Explanation

if TYPE_CHECKING:
    from taskq.master.state import BrokerState


def explain(state: BrokerState, task_id: str, now: float) -> Explanation:
    """Where ``task_id`` is and what holds it there (``now`` on the state's clock)."""
    rec = state.tasks.get(task_id)
    if rec is not None:
        out = _live(state, rec, now)
    elif task_id in state.uniques.aliases:
        target = state.uniques.aliases[task_id]
        out = Explanation(task_id, ExplainKind.JOINED,
                          f"joined task {target} (same unique key): it ends with that task",
                          facts={"target": target})
    else:
        out = _gone(state, task_id)
    out.facts.setdefault("task_id", task_id)
    return out


def _live(state: BrokerState, rec: TaskRecord, now: float) -> Explanation:
    out = _live_where(state, rec, now)
    expires_at = rec.msg.options.expires_at
    if expires_at and not rec.started:
        out.facts["expires_at"] = expires_at
        out.reasons.append(f"unless it starts by {_at(expires_at)} (expires="
                           f"{rec.msg.options.expires:g} s), it ends expired and never runs")
    return out


def _live_where(state: BrokerState, rec: TaskRecord, now: float) -> Explanation:
    options = rec.msg.options
    facts: dict[str, Any] = {"job": job_name(rec.msg.outbox), "queue": options.queue,
                             "priority": options.priority, "attempt": rec.lost + rec.errors,
                             "retries_used": rec.errors, "workers_lost": rec.lost}
    if rec.state is TaskState.BLOCKED:
        return _blocked(state, rec, now, facts)
    if rec.state is TaskState.WAITING:
        return _waiting(state, rec, facts)
    if rec.state is TaskState.LEASED:
        return _leased(state, rec, facts)
    return _pending(state, rec, now, facts)


def _blocked(state: BrokerState, rec: TaskRecord, now: float,
             facts: dict[str, Any]) -> Explanation:
    """Waiting for dependencies: each one not ended, and where that one is."""
    waiting = state.deps.blockers(rec.msg.task_id)
    ended = len(rec.msg.deps) - len(waiting)
    facts.update(dependencies=list(rec.msg.deps), waiting_for={
        dep: explain(state, dep, now).kind.value for dep in waiting})
    where = ", ".join(f"{dep} ({kind})" for dep, kind in facts["waiting_for"].items())
    why = (f"waiting for {len(waiting)} of its {len(rec.msg.deps)} dependencies to end: "
           f"{where}")
    reasons = [why]
    if ended:
        reasons.append(f"{ended} ended OK; their results are kept on the master for it")
    return Explanation(rec.msg.task_id, ExplainKind.WAITING_DEPS, why, reasons, facts)


def _waiting(state: BrokerState, rec: TaskRecord, facts: dict[str, Any]) -> Explanation:
    until = rec.not_before + state.wall_offset
    facts["until"] = until
    task_id = rec.msg.task_id
    if rec.errors and not _restored_hold(state, rec):
        last = _last_attempt(state, task_id)
        facts["last_error"] = last
        of = rec.msg.options.retries
        why = f"waiting for retry {rec.errors} of {of} until {_at(until)}"
        return Explanation(task_id, ExplainKind.RETRY_WAIT,
                           why + (f" (attempt {rec.errors} {last})" if last else ""),
                           [why], facts)
    run_at = rec.msg.options.run_at
    if run_at and abs(run_at - until) < 1e-6:
        why = f"delayed: it does not start before {_at(run_at)}"
        return Explanation(task_id, ExplainKind.DELAYED, why, [why], facts)
    why = (f"held until {_at(until)} after the master restarted, so that a worker still "
           f"running it can claim it back before another starts it")
    return Explanation(task_id, ExplainKind.RESTORED, why, [why], facts)


def _restored_hold(state: BrokerState, rec: TaskRecord) -> bool:
    return state.restore_hold_until > 0 and abs(rec.not_before - state.restore_hold_until) < 1e-6


def _pending(state: BrokerState, rec: TaskRecord, now: float,
             facts: dict[str, Any]) -> Explanation:
    options = rec.msg.options
    queue = options.queue
    mine = (-options.priority, rec.seq)
    ahead = sum(1 for other in state.queues.valid_pending(queue)
                if (-other.msg.options.priority, other.seq) < mine)
    serving = [w for w in state.workers.values() if queue in w.queues and not w.draining]
    facts.update(ahead=ahead, workers=[w.worker_id for w in serving],
                 free_slots=sum(max(0, w.procs - w.running) for w in serving))
    reasons = _blockers(state, rec, serving, now, facts)
    if rec.refused_by:
        facts["could_not_load"] = dict(rec.refused_by)
        stuck = unloadable.blocker(rec.refused_by, queue, [w.worker_id for w in serving])
        reasons += [stuck] if stuck else []
    kind = ExplainKind.QUEUED
    if not serving:
        kind = ExplainKind.NO_WORKER
    elif reasons:
        kind = ExplainKind.LIMITED
    reasons.append(f"queued in {queue!r} behind {ahead} task{'s' * (ahead != 1)} "
                   f"(by priority, then arrival)")
    if serving and facts["free_slots"] == 0:
        reasons.append(f"all {len(serving)} worker{'s' * (len(serving) != 1)} serving "
                       f"{queue!r} are busy")
    refusals = unloadable.note_line(rec.refused_by)
    reasons += [refusals] if refusals else []
    return Explanation(rec.msg.task_id, kind, reasons[0], reasons, facts)


def _blockers(state: BrokerState, rec: TaskRecord, serving: list[Any], now: float,
              facts: dict[str, Any]) -> list[str]:
    """What stops the task from being leased even when it is next: no worker, limits,
    resources (first the ones no waiting would cure)."""
    options = rec.msg.options
    queue, limits, out = options.queue, state.limits, []
    if queue in limits.paused:
        facts["paused"] = True
        out.append(f"queue {queue!r} is paused: `taskq queue resume {queue}` lets it run")
    if not serving:
        out.append(f"no worker serves queue {queue!r}: start one with "
                   f"`taskq worker --queues {queue}`")
    limit = limits.by_queue.get(queue)
    if limit is not None and limit.concurrency \
            and limits.running_by_queue[queue] >= limit.concurrency:
        facts["concurrency"] = limit.concurrency
        out.append(f"queue {queue!r} is at its concurrency limit: "
                   f"{limits.running_by_queue[queue]} of {limit.concurrency} running")
    if limit is not None and limit.rate:
        ready = limits.next_token((queue,), now)
        if ready is not None and ready > now:
            facts["rate"] = limit.rate
            out.append(f"queue {queue!r} is rate-limited to {limit.rate:g}/s: next start "
                       f"at {_at(ready + state.wall_offset)}")
    key = options.limit_key
    if key and limits.running_by_key[key] >= max(options.limit, 1):
        facts["limit_key"] = key
        out.append(f"limit key {key!r} is at its limit: {limits.running_by_key[key]} of "
                   f"{max(options.limit, 1)} running")
    needs = options.resources
    if needs:
        facts["resources"] = describe(needs)
        if state.resources.never_fits(needs):
            out.append(f"needs {describe(needs)}: no connected worker has that much")
        elif serving and not any(state.resources.fits(w.worker_id, needs) for w in serving):
            out.append(f"needs {describe(needs)}: not free on any worker serving {queue!r} now")
    return out


def _leased(state: BrokerState, rec: TaskRecord, facts: dict[str, Any]) -> Explanation:
    worker = state.workers.get(rec.worker or "")
    where = rec.worker or "?"
    if worker is not None:
        where = f"{worker.worker_id} ({worker.host}, pid {worker.pid})"
    live = state.history.live.get(rec.msg.task_id)
    leased_at = live.leased if live is not None else 0.0
    facts.update(worker=rec.worker, leased_at=leased_at,
                 lease_expires=state.lease_expires(rec) + state.wall_offset)
    if rec.started:
        return _running(state, rec, where, facts)
    why = (f"handed to worker {where}" + (f" at {_at(leased_at)}" if leased_at else "")
           + ", waiting for a free slot in its pool")
    reasons = [why]
    if rec.cancel_asked:
        reasons.append("its cancel was asked of the worker, which has not answered yet")
    if worker is None:
        expires = state.lease_expires(rec) + state.wall_offset
        reasons.append(f"its worker is silent: the lease expires at {_at(expires)}, then "
                       f"it is queued again")
    return Explanation(rec.msg.task_id, ExplainKind.LEASED, why, reasons, facts)


def _running(state: BrokerState, rec: TaskRecord, where: str,
             facts: dict[str, Any]) -> Explanation:
    since = rec.started_at + state.wall_offset if rec.started_at else facts["leased_at"]
    facts["started_at"] = since
    why = f"running on worker {where}" + (f" since {_at(since)}" if since else "")
    progress = rec.progress
    if progress is not None:
        facts["progress"] = {"done": progress.done, "total": progress.total,
                             "message": progress.message}
        why += f", at {describe_progress(progress)}"
    reasons = [why]
    if rec.stop_asked:
        reasons.append("a stop was asked: its worker is stopping it, and it ends cancelled")
    return Explanation(rec.msg.task_id, ExplainKind.RUNNING, why, reasons, facts)


def _gone(state: BrokerState, task_id: str) -> Explanation:
    task = state.history.tasks.get(task_id)
    unfetched = next((name for name, box in state.outboxes.items() if task_id in box.results),
                     None)
    if task is None and unfetched is None:
        return Explanation(task_id, ExplainKind.UNKNOWN,
                           f"the master knows no task {task_id}: it was never submitted to "
                           f"this master, or it ended and its history was pruned")
    facts: dict[str, Any] = {}
    reasons = []
    if task is not None:
        facts.update(_ended_facts(task))
        summary = (f"ended {task.outcome or '?'} at {_at(task.ended)} after "
                   f"{len(task.attempts)} attempt{'s' * (len(task.attempts) != 1)}")
    else:
        result = state.outboxes[unfetched].results[task_id] if unfetched else None
        outcome = result.status.value if result is not None else "?"
        facts["outcome"] = outcome
        summary = f"ended {outcome}"
    reasons.append(summary)
    if task is not None and task.outcome in ("unloadable", "expired") and facts.get("detail"):
        reasons.append(facts["detail"])  # which workers tried and why; or its deadline
    if unfetched is not None:
        facts["unfetched"] = job_name(unfetched)
        reasons.append(f"its result waits to be fetched by {job_name(unfetched)!r}")
    return Explanation(task_id, ExplainKind.ENDED, summary, reasons, facts)


def _ended_facts(task: TaskHistory) -> dict[str, Any]:
    last = task.attempts[-1] if task.attempts else None
    facts: dict[str, Any] = {"job": task.job, "queue": task.queue, "outcome": task.outcome,
                             "ended": task.ended, "attempts": len(task.attempts)}
    if last is not None:
        facts.update(worker=last.worker, error_type=last.error_type,
                     detail=last.detail.splitlines()[-1] if last.detail else "")
    return facts


def _last_attempt(state: BrokerState, task_id: str) -> str:
    task = state.history.tasks.get(task_id)
    if task is None or not task.attempts:
        return ""
    last = task.attempts[-1]
    return f"{last.outcome}" + (f": {last.error_type}" if last.error_type else "")


def _at(wall: float) -> str:
    """Epoch seconds as an ISO time in UTC (to the millisecond)."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
