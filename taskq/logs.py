"""Logging: what library code logs with, and the set-up each entry point runs once.

Library code logs with structlog's API but delivers every event to the standard ``logging``
machinery, so a program's own logging configuration decides what is shown and where; a
program that configures nothing sees at most warnings, on stderr (``logging``'s last resort)::

    log = logs.get_logger(__name__)
    log.warning("master_link_lost", address=...) ─► logging.getLogger("taskq.client.client")
        record: message "master_link_lost address='...'", record.taskq_fields = {...}
                                                       │
    a program's handlers ◄─────────────────────────────┤
    taskq's CLI (configure): readable or JSON lines ◄──┘ (fields lifted back from the record)

The CLI renders readable console lines on a terminal, JSON lines otherwise (or when asked),
on stderr so that stdout stays for a command's own output.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from structlog.typing import EventDict

LEVELS = ("debug", "info", "warning", "error")
_FIELDS = "taskq_fields"  # the LogRecord attribute that carries an event's fields


def _to_record(_logger: Any, _method: str, event_dict: EventDict) -> Any:
    """The last processor: a readable message, with the fields kept on the record."""
    exc_info = event_dict.pop("exc_info", None)
    fields = {"event": event_dict.pop("event", ""), **event_dict}
    text = " ".join([str(fields["event"]), *(f"{k}={v!r}" for k, v in event_dict.items())])
    return (text,), {"extra": {_FIELDS: fields}, "exc_info": exc_info}


class _Logger:
    """A library logger, made on its first use: a program that never logs does not pay for
    importing structlog (and the rich it loads), about a fifth of a second."""

    __slots__ = ("_bound", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._bound is None:
            import structlog

            self._bound = structlog.wrap_logger(
                logging.getLogger(self._name), wrapper_class=structlog.stdlib.BoundLogger,
                processors=[structlog.stdlib.filter_by_level, _to_record],
                context_class=dict, cache_logger_on_first_use=False)
        return getattr(self._bound, method)


def get_logger(name: str) -> Any:
    """A library logger: ``log.info("event", key=value)``, delivered to ``logging``."""
    return _Logger(name)


def _lift_fields(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Give a taskq event its own fields back (other records keep their message)."""
    record = event_dict.get("_record")
    fields = getattr(record, _FIELDS, None)
    if fields:
        event_dict.update(fields)
    return event_dict


def parse_level(text: str) -> int:
    """'info' -> logging.INFO; ValueError naming the accepted levels."""
    if text.lower() not in LEVELS:
        raise ValueError(f"bad log level {text!r}: expected one of {', '.join(LEVELS)}")
    return logging.getLevelNamesMapping()[text.upper()]


def configure(json: bool | None = None, level: str = "info") -> None:
    """Route this process's logging to stderr, rendered by structlog (entry points only)."""
    import structlog

    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
        foreign_pre_chain=[_lift_fields, structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)]))
    numeric = parse_level(level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))  # other libraries: warnings and worse
    logging.getLogger("taskq").setLevel(numeric)
