"""How ``taskq status`` shows a cluster: a rich table of workers, a summary line, and
the progress of each job (values fold on a narrow terminal, and are whole on a pipe)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from taskq.cli.render import jobs_table, new_table, size, stdout_console
from taskq.protocol.replies import ClusterStatus

_LEFT = ("worker", "host", "pool", "state")
THREAD_NOTE = ("busy: slots in use. A thread cannot be killed: a task that timed out on a "
               "threads pool (or a plain function on an asyncio pool) keeps its slot busy "
               "until it returns.")


def render(status: ClusterStatus, address: str, console: Console | None = None,
           jobs: list[dict[str, Any]] | None = None) -> None:
    console = console or stdout_console()
    columns = ("worker", "host", "pid", "pool", "state", "size", "busy", "held", "done", "failed",
               "memory", "seen")
    table = new_table(columns, f"taskq master {address}  (up {status.uptime:.0f} s, "
                               f"{'durable' if status.durable else 'in-memory'})",
                      right=tuple(c for c in columns if c not in _LEFT))
    for w in sorted(status.workers, key=lambda w: w.worker_id):
        table.add_row(w.worker_id, w.host, str(w.pid), w.pool,
                      "draining" if w.draining else "active", str(w.procs), str(w.busy),
                      str(w.held), str(w.done), str(w.failed), size(w.memory),
                      f"{w.seen_ago:.1f}s ago")
    console.print(table)
    if any(w.pool != "processes" for w in status.workers):
        console.print(THREAD_NOTE)
    for w in sorted(status.workers, key=lambda w: w.worker_id):
        if w.resources:
            console.print(f"resources of {w.worker_id}: {w.resources}")
    for needs, count in sorted(status.unfit.items()):
        console.print(f"[bold red]{count} queued task(s) need {needs}: no connected worker "
                      f"has that much; start one with --resources {needs}[/]")
    queues = ", ".join(f"{q}={n}" for q, n in sorted(status.pending.items())) or "empty"
    console.print(f"workers: {len(status.workers)}  queued: {sum(status.pending.values())} "
                  f"({queues})  waiting: {status.waiting}  running: {status.leased}  "
                  f"done: {status.done}  failed: {status.failed}  "
                  f"results waiting: {status.results_waiting}")
    if status.desired:  # the autoscaling target (taskq_desired_workers)
        console.print("desired workers: " + ", ".join(
            f"{q}={n}" for q, n in sorted(status.desired.items())))
    if len(status.keys) > 1:  # a key rotation under way: who still uses which key
        console.print("connections by authkey (first: the master's own): " + ", ".join(
            f"{fp}={n}" for fp, n in status.keys.items()))
    if jobs:
        console.print(jobs_table(jobs))
