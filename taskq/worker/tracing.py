"""The worker's spans: one per task it runs (kind CONSUMER), a child of the span that
submitted it, made in the worker's own process around the task's run in its pool.

    take_in ── begin(task) ─► span: parent from TaskOptions.trace, a link to the earlier
        │                     attempt's span (TaskOptions.trace_prev)
        ▼  Payload.trace (its traceparent) ─► where the task runs: the current span there,
    report ── end(result) ─► outcome, status ERROR + an ``exception`` event on a failure;
        │                    ResultMsg.trace = its traceparent (the master keeps it for a retry)
    forget ── a task handed back or dropped: its span ends "released"

Why here and not in the pool process: the worker outlives the process that runs a task,
so a task whose process crashed, was killed at its timeout or was stopped still gets its
span, with that outcome; one exporter per worker, not one per pool process (whose spans
would die with it); and the threads and asyncio pools are served the same way. The span's
context still reaches the task (``taskq.worker.execute.task_context`` makes it current),
so spans the task makes are its children where that process traces (a ``--setup`` hook
may set a tracer provider there).

Made only when ``taskq.tracing.active()`` (``Spans.open`` is None otherwise): nothing of
OpenTelemetry is imported by a worker that does not trace.
"""

from __future__ import annotations

import threading
from typing import Any

from taskq import tracing
from taskq.protocol.messages import ResultMsg, Status, TaskMsg

RELEASED = "released"  # the outcome of a task handed back or dropped, not run here


class Spans:
    """The open spans of the tasks this worker holds (any thread)."""

    def __init__(self, worker_id: str, pool: str) -> None:
        self._worker, self._pool = worker_id, pool
        self._open: dict[str, Any] = {}
        # ended with an outcome, not forgotten yet: the forget that follows a report is not
        # the end of a next attempt taken in meanwhile (a retry may come back at once)
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, worker_id: str, pool: str) -> Spans | None:
        """The worker's spans if this process traces, else None."""
        return cls(worker_id, pool) if tracing.active() else None

    def begin(self, task: TaskMsg) -> str:
        """Open the span of a task taken in; returns its traceparent."""
        from opentelemetry.trace import Link, SpanKind

        options = task.options
        before = tracing.span_context_of(options.trace_prev) if options.trace_prev else None
        span = tracing.tracer().start_span(
            f"process {options.queue}", context=tracing.context_of(options.trace),
            kind=SpanKind.CONSUMER, links=[Link(before)] if before else [],
            attributes={"messaging.system": tracing.SYSTEM,
                        "messaging.operation.type": "process",
                        "messaging.destination.name": options.queue,
                        "messaging.message.id": task.task_id,
                        "taskq.task.id": task.task_id, "taskq.queue": options.queue,
                        "taskq.attempt": task.attempt, "taskq.worker.id": self._worker,
                        "taskq.pool": self._pool})
        with self._lock:
            self._open[task.task_id] = span
        return tracing.traceparent_of(span)

    def end(self, results: list[ResultMsg]) -> None:
        """Close the spans of these outcomes; each result carries its span's traceparent."""
        for result in results:
            with self._lock:
                span = self._open.pop(result.task_id, None)
                self._ended.add(result.task_id)
            if span is not None:
                result.trace = tracing.traceparent_of(span)
                _close(span, result.status.value, _failure(result))

    def forget(self, task_ids: list[str]) -> None:
        """Close the spans of tasks that leave this worker without an outcome."""
        with self._lock:
            gone = [t for t in task_ids if t not in self._ended]
            self._ended.difference_update(task_ids)
            spans = [s for s in map(self._open.pop, gone, [None] * len(gone)) if s]
        for span in spans:
            _close(span, RELEASED, None)


def _failure(result: ResultMsg) -> tuple[str, str, str] | None:
    """(type, message, stacktrace) of a failed outcome, from its text (never unpickled)."""
    if result.status in (Status.OK, Status.CANCELLED):  # a cancel is no failure of the task
        return None
    if result.status is Status.ERROR and result.detail:
        last = result.detail.rstrip().rsplit("\n", 1)[-1]
        kind, _, message = last.partition(": ")
        return kind.strip(), message.strip(), result.detail
    name = {Status.TIMEOUT: "taskq.TaskTimeout", Status.CRASHED: "taskq.TaskCrashed",
            Status.UNLOADABLE: "taskq.TaskLoadError"}.get(result.status, "taskq.TaskqError")
    return name, result.detail.partition("\n")[0], ""


def _close(span: Any, outcome: str, failure: tuple[str, str, str] | None) -> None:
    from opentelemetry.trace import Status as SpanStatus
    from opentelemetry.trace import StatusCode

    span.set_attribute("taskq.outcome", outcome)
    if failure is not None:
        kind, message, stacktrace = failure
        span.add_event("exception", tracing.exception_event(kind, message, stacktrace))
        span.set_status(SpanStatus(StatusCode.ERROR, f"{kind}: {message}" if message else kind))
    span.end()
