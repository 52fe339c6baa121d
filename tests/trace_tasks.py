"""Task functions of the tracing tests (tests/ is on the workers' PYTHONPATH)."""

from __future__ import annotations

import sys

import taskq


def double(x: int) -> int:
    return 2 * x


def fails(message: str) -> None:
    raise ValueError(message)


def fails_first_time() -> str:
    """Raises on its first attempt, returns on the next (``retries=1``)."""
    if taskq.current_task().attempt == 0:
        raise RuntimeError("first attempt fails")
    return "second attempt"


def current_span() -> tuple[str, str]:
    """The (trace id, span id) current where the task runs, as hex ("" if none)."""
    if "opentelemetry.trace" not in sys.modules:
        return "", ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return f"0x{context.trace_id:032x}", f"0x{context.span_id:016x}"


def opentelemetry_loaded() -> list[str]:
    """The OpenTelemetry modules loaded in the process that runs the task."""
    return sorted(m for m in sys.modules if m == "opentelemetry" or
                  m.startswith("opentelemetry."))


async def current_span_async() -> tuple[str, str]:
    """``current_span`` in an ``async def`` (the asyncio pool's loop)."""
    return current_span()
