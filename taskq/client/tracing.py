"""The client's spans: one per submitted task (kind PRODUCER), whose traceparent travels in
the task's options, so the worker's span of the task is its child.

    Client._prepare ── encoded, checked ──► submitted(msg, found, start) ── span ended
        msg.options.trace = its traceparent; links to the submit spans of the tasks whose
        futures are among the arguments (its dependencies)

Called only when ``taskq.tracing.active()``: nothing of OpenTelemetry is imported otherwise.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from taskq import tracing
from taskq.client.deps import Found
from taskq.protocol.messages import TaskMsg


def submitted(msg: TaskMsg, found: Found | None, start: int) -> None:
    """The span of a task's submission (from ``start``, epoch ns, to now): its traceparent
    goes into ``msg.options``, its links to its dependencies' submit spans."""
    from opentelemetry.trace import Link, SpanKind

    queue = msg.options.queue
    links = [Link(c) for c in map(tracing.span_context_of, _dependency_traces(found)) if c]
    span = tracing.tracer().start_span(
        f"send {queue}", kind=SpanKind.PRODUCER, start_time=start, links=links,
        attributes={"messaging.system": tracing.SYSTEM, "messaging.operation.type": "send",
                    "messaging.destination.name": queue, "messaging.message.id": msg.task_id,
                    "taskq.task.id": msg.task_id, "taskq.queue": queue,
                    "taskq.dependencies": len(msg.deps)})
    msg.options = replace(msg.options, trace=tracing.traceparent_of(span))
    span.end()


def _dependency_traces(found: Found | None) -> list[str]:
    """The traceparents of the submit spans of the tasks a new one depends on (those this
    process submitted and traced)."""
    out = []
    for client, task_id in found.pinned if found is not None else ():
        entry: Any = client._entries.get(task_id)
        if entry is not None and entry.msg.options.trace:
            out.append(entry.msg.options.trace)
    return list(dict.fromkeys(out))
