"""OpenTelemetry, shared by the client and the worker: whether this process traces, W3C
traceparents in and out, and the SDK set up from ``OTEL_*`` for taskq's own processes.

Nothing here imports ``opentelemetry`` unless the application did (or asked for it with
``OTEL_TRACES_EXPORTER``): a process traces only when ``opentelemetry.trace`` is already
loaded and a real tracer provider is set, so without the ``taskq[otel]`` extra, or with it
but no provider, tracing costs one dictionary lookup per task::

    client: submit span (producer) ── TaskOptions.trace (traceparent) ──► master (a string)
    worker: task span (consumer), child of it ── Payload.trace ──► where the task runs
            its traceparent ──► ResultMsg.trace ──► master: a retry's TaskOptions.trace_prev
"""

from __future__ import annotations

import os
import sys
from typing import Any

TRACER = "taskq"
SYSTEM = "taskq"  # messaging.system
EXTRA_HINT = "pip install 'taskq[otel]'"
OTLP_HINT = "pip install opentelemetry-exporter-otlp"


def active() -> bool:
    """Does this process trace? Only if the application loaded OpenTelemetry and set a
    tracer provider of its own (nothing is imported to find out)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer(TRACER)


def context_of(traceparent: str) -> Any:
    """An OpenTelemetry context whose current span is the one ``traceparent`` names (the
    empty context for "" or a malformed one)."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def span_context_of(traceparent: str) -> Any:
    """The SpanContext ``traceparent`` names, or None."""
    from opentelemetry import trace

    context = trace.get_current_span(context_of(traceparent)).get_span_context()
    return context if context.is_valid else None


def traceparent_of(span: Any) -> str:
    """The W3C traceparent of a span ("" for one that is not recording or sampled out)."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


def exception_event(kind: str, message: str, stacktrace: str = "") -> dict[str, str]:
    """The attributes of an ``exception`` span event (OpenTelemetry's semantic
    conventions), for an exception known only by its text (the worker never unpickles a
    task's exception)."""
    event = {"exception.type": kind, "exception.message": message}
    if stacktrace:
        event["exception.stacktrace"] = stacktrace
    return event


def configure_from_env() -> None:
    """taskq's own processes (``taskq master``, ``taskq worker``): set up the SDK from the
    standard ``OTEL_*`` variables with its own autoconfiguration, when
    ``OTEL_TRACES_EXPORTER`` names an exporter. What cannot be done is one line on stderr
    (the process goes on, untraced)."""
    wanted = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not wanted or wanted.lower() == "none" or \
            os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    try:
        from opentelemetry.sdk._configuration import _initialize_components
    except ImportError:
        _say(f"OTEL_TRACES_EXPORTER={wanted} but the OpenTelemetry SDK is not installed "
             f"({EXTRA_HINT}); tracing is off")
        return
    try:
        _initialize_components()
    except Exception as exc:  # an exporter that is not installed, a bad setting
        hint = f" ({OTLP_HINT})" if "otlp" in wanted.lower() and "not found" in str(exc) \
            else ""
        _say(f"OTEL_TRACES_EXPORTER={wanted}: {' '.join(str(exc).split())}{hint}; "
             f"tracing is off")


def _say(line: str) -> None:
    print(f"taskq: warning: {line}", file=sys.stderr, flush=True)
