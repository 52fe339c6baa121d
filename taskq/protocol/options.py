"""Per-task options carried by the callable itself, so they never collide with its kwargs.

    @taskq.task(timeout=5, retries=2)        client.submit(fetch, url)
    def fetch(url): ...                ──►   TaskMsg.options = TaskOptions(timeout=5, retries=2)
"""

from __future__ import annotations

import functools
import importlib
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskq.protocol.messages import Schedule, TaskOptions

P = ParamSpec("P")
R = TypeVar("R")


class TaskFunction(Generic[P, R]):
    """A callable with taskq options; calling it calls the function (and its parameters
    and return type are the function's, for ``submit``'s type)."""

    def __init__(self, fn: Callable[P, R], options: TaskOptions) -> None:
        if not callable(fn):
            raise TypeError(f"taskq.task needs a callable, not {type(fn).__name__}")
        self.fn = fn
        self.taskq_options = options
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<taskq.task {getattr(self.fn, '__qualname__', self.fn)!r} {self.taskq_options}>"


def exception_names(retry_on: object) -> tuple[str, ...]:
    """``(IOError, taskq.TaskTimeout)`` -> ``("builtins:OSError", "taskq.errors:TaskTimeout")``;
    ValueError unless every item is an exception type."""
    items = retry_on if isinstance(retry_on, tuple | list) else (retry_on,)
    names = []
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ValueError(f"retry_on must be exception types (e.g. (IOError, "
                             f"taskq.TaskTimeout)), not {item!r}")
        names.append(f"{item.__module__}:{item.__qualname__}")
    return tuple(names)


def retry_applies(names: tuple[str, ...], failure: type[BaseException]) -> bool:
    """Is a failure of this type retried under ``retry_on`` names? (Where it runs: the
    names are resolved by import, so a type no one can import there matches nothing.)"""
    for name in names:
        module, _, qualname = name.partition(":")
        target: Any = sys.modules.get(module)
        if target is None:
            try:
                target = importlib.import_module(module)
            except Exception:  # noqa: S112 -- a class whose module does not import here cannot match
                continue
        for part in qualname.split("."):
            target = getattr(target, part, None)
        if isinstance(target, type) and issubclass(failure, target):
            return True
    return False


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|millis(?:econds?)?|s|secs?|seconds?|m|mins?|"
                       r"minutes?|h|hrs?|hours?|d|days?|w|weeks?)(?![a-z])", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _unit_seconds(unit: str) -> float:
    """Seconds in a unit as written: 'm', 'min', 'minutes'; 'ms', 'milliseconds'."""
    unit = unit.lower()
    return _UNIT_S["ms" if unit.startswith(("ms", "milli")) else unit[0]]


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$",
                   re.IGNORECASE)
_PER_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> float:
    """'10/s', '600/m', '5/h' -> tasks per second; ValueError naming what is expected."""
    match = _RATE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"bad rate {text!r}: expected a positive number of tasks per "
                         f"second, minute or hour, e.g. 10/s, 600/m, 5/h")
    return float(match.group(1)) / _PER_S[match.group(2)[0].lower()]


def parse_duration(text: str, *, positive: bool = False) -> float:
    """'90s', '10m', '1h30m', '2d', '2w', '250ms', the same with words ('10 minutes',
    '1 hour 30 min') or plain seconds ('12.5') -> seconds: the one grammar of every duration
    taskq reads (flags, options, schedules). ``positive`` refuses 0."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or _DURATION.sub("", text).strip():
            raise ValueError(f"bad duration {text!r}: expected e.g. 30s, 10m, "
                             f"'10 minutes', 1h30m, 2d or a number of seconds") from None
        seconds = sum(float(n) * _unit_seconds(unit) for n, unit in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"bad duration {text!r}: must be 0 or more seconds")
    if positive and seconds == 0:
        raise ValueError(f"bad duration {text!r}: must be more than 0 seconds")
    return seconds


def start_time(delay: float | None = None, when: datetime | None = None) -> float:
    """Wall-clock time (epoch seconds) to start at: ``delay`` seconds from now, or ``when``
    (a timezone-aware datetime); ValueError for a negative delay or a naive datetime."""
    if when is not None:
        if not isinstance(when, datetime):
            raise ValueError(f"when must be a datetime, not {type(when).__name__}")
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"when must be timezone-aware (e.g. datetime.now(timezone.utc) "
                             f"+ timedelta(minutes=10)), not the naive {when.isoformat()}")
        return when.timestamp()
    if delay is None or not isinstance(delay, int | float) or not math.isfinite(delay) \
            or delay < 0:
        raise ValueError(f"the delay must be 0 or more seconds, not {delay!r}")
    return time.time() + float(delay)


def parse_when(text: str) -> float:
    """An ISO 8601 time with its offset ('2026-12-01T02:00+01:00') -> epoch seconds."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"bad time {text!r}: expected ISO 8601 with an offset, e.g. "
                         f"2026-12-01T02:00+01:00") from None
    return start_time(when=when)


def _check_keys(limit_key: str, limit: int, unique: str, unique_for: float) -> None:
    if bool(limit_key) != bool(limit) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit_key and limit go together: a key and a limit of 1 or more "
                         f"tasks at once, not {limit_key!r} and {limit!r}")
    if (unique_for and not unique) or not unique_for >= 0:
        raise ValueError(f"unique_for needs a unique key and must be 0 or more seconds, not "
                         f"{unique!r} and {unique_for!r}")


_RESOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def check_needs(needs: object) -> tuple[tuple[str, float], ...]:
    """A ``{"gpu": 1}`` mapping as sorted pairs; ValueError naming what is wrong."""
    if not isinstance(needs, dict):
        raise ValueError(f"resources must be a dict of name to amount, not {needs!r}")
    out = []
    for name, amount in needs.items():
        if not isinstance(name, str) or not _RESOURCE_NAME.match(name):
            raise ValueError(f"bad resource name {name!r}: expected letters, digits, _ . -")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0 \
                or amount != amount:
            raise ValueError(f"bad amount {amount!r} of resource {name!r}: expected a "
                             "number >= 0")
        if amount > 0:
            out.append((name, float(amount)))
    return tuple(sorted(out))


def parse_resources(text: str) -> tuple[tuple[str, float], ...]:
    """``'gpu=2,ram_gb=64'`` -> sorted pairs; ValueError naming what is expected."""
    pairs: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, amount = part.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not part or not sep or not name.strip() or value < 0:
            raise ValueError(f"bad resources {text!r}: expected NAME=AMOUNT[,NAME=AMOUNT], "
                             "amounts >= 0, e.g. gpu=2,ram_gb=64")
        pairs[name.strip()] = value
    return check_needs(pairs)


def _seconds(name: str, value: object) -> float | None:
    """A positive number of seconds (None stays None); ValueError naming the option."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _time_limits(timeout: object, soft_timeout: object, expires: object
                 ) -> tuple[float | None, float | None, float]:
    """(timeout, soft_timeout, expires) checked; soft_timeout must come before timeout."""
    hard, soft = _seconds("timeout", timeout), _seconds("soft_timeout", soft_timeout)
    if hard is not None and soft is not None and soft >= hard:
        raise ValueError(f"soft_timeout must be less than timeout (it is raised in the task "
                         f"before the timeout ends it), not {soft:g} >= {hard:g}")
    return hard, soft, _seconds("expires", expires) or 0.0


def make_options(timeout: float | None = None, retries: int = 0, priority: int = 0,
                 queue: str = "default", *, retry_on: object = (), backoff: float = 0.0,
                 max_backoff: float = 60.0, jitter: bool = True, limit_key: str = "",
                 limit: int = 0, unique: str = "", unique_for: float = 0.0,
                 resources: object = None, expires: float | None = None,
                 soft_timeout: float | None = None, result_ttl: object = None) -> TaskOptions:
    """Validated options; ValueError says which one is wrong."""
    hard, soft, expiry = _time_limits(timeout, soft_timeout, expires)
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries!r}")
    if not queue:
        raise ValueError("queue must be a non-empty name")
    if not backoff >= 0 or not max_backoff >= 0:
        raise ValueError(f"backoff and max_backoff must be 0 or more seconds, not "
                         f"{backoff!r} and {max_backoff!r}")
    _check_keys(limit_key, limit, unique, unique_for)
    return TaskOptions(timeout=hard, expires=expiry, soft_timeout=soft, retries=int(retries),
                       priority=int(priority), queue=queue,
                       retry_on=exception_names(retry_on), backoff=float(backoff),
                       max_backoff=float(max_backoff), jitter=bool(jitter),
                       limit_key=limit_key, limit=int(limit), unique=unique,
                       unique_for=float(unique_for), resources=check_needs(resources or {}),
                       result_ttl=ttl_seconds(result_ttl))


def ttl_seconds(ttl: object) -> float | None:
    """A ``result_ttl`` as seconds (a number, a ``timedelta`` or text such as '1h'); None
    stays None (the master's default); ValueError for anything else or a negative one."""
    if ttl is None:
        return None
    try:
        if isinstance(ttl, bool):
            raise TypeError
        seconds = interval(ttl)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"result_ttl must be 0 or more seconds (a number, a timedelta or "
                         f"text such as '1h'), not {ttl!r}")
    return seconds


@overload
def task(fn: Callable[P, R], *, timeout: float | None = ..., retries: int = ...,
         priority: int = ..., queue: str = ..., retry_on: object = ..., backoff: float = ...,
         max_backoff: float = ..., jitter: bool = ..., limit_key: str = ..., limit: int = ...,
         unique: str = ..., unique_for: float = ...,
         resources: dict[str, float] | None = ..., expires: float | None = ...,
         soft_timeout: float | None = ...,
         result_ttl: float | timedelta | str | None = ...,
         on_failure: Callable[[str, BaseException], Any] | None = ...,
         on_success: Callable[[str, Any], Any] | None = ...) -> TaskFunction[P, R]: ...
@overload
def task(fn: None = None, *, timeout: float | None = ..., retries: int = ...,
         priority: int = ..., queue: str = ..., retry_on: object = ..., backoff: float = ...,
         max_backoff: float = ..., jitter: bool = ..., limit_key: str = ..., limit: int = ...,
         unique: str = ..., unique_for: float = ...,
         resources: dict[str, float] | None = ..., expires: float | None = ...,
         soft_timeout: float | None = ...,
         result_ttl: float | timedelta | str | None = ...,
         on_failure: Callable[[str, BaseException], Any] | None = ...,
         on_success: Callable[[str, Any], Any] | None = ...,
         ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...


def task(fn: Callable[..., Any] | None = None, *, timeout: float | None = None,
         retries: int = 0, priority: int = 0, queue: str = "default", retry_on: object = (),
         backoff: float = 0.0, max_backoff: float = 60.0, jitter: bool = True,
         limit_key: str = "", limit: int = 0, unique: str = "", unique_for: float = 0.0,
         resources: dict[str, float] | None = None, expires: float | None = None,
         soft_timeout: float | None = None,
         result_ttl: float | timedelta | str | None = None,
         on_failure: Callable[[str, BaseException], Any] | None = None,
         on_success: Callable[[str, Any], Any] | None = None,
         ) -> TaskFunction[..., Any] | Callable[[Callable[..., Any]], TaskFunction[..., Any]]:
    """Attach options to a callable: ``task(fn, timeout=2)`` or ``@task(timeout=2)``.

    ``retries`` re-runs a failed task up to that many times; ``retry_on`` names the failures
    that are retried (exception types: the task's own, ``taskq.TaskTimeout``,
    ``taskq.TaskCrashed``; default: any exception the task raised); the n-th retry waits
    ``backoff * 2**(n-1)`` seconds, at most ``max_backoff``, drawn uniformly from zero to
    that unless ``jitter=False``. ``limit_key``/``limit``: at most ``limit`` tasks with that
    key run at once across the cluster. ``unique``: while a task with that key is queued,
    waiting or running (and ``unique_for`` seconds after it ended), a submit with the key
    returns a future of that task and runs nothing new. ``resources``: what the task holds
    on its worker while it runs (``{"gpu": 1}``); only a worker started with that much free
    (``--resources gpu=2``) takes it. ``expires``: a task not started within that many
    seconds of its submit never runs (``taskq.TaskExpired``; a retry too). ``soft_timeout``:
    ``taskq.SoftTimeout`` is raised inside the task after that many seconds, before the
    hard ``timeout`` (which it must be less than) ends it. ``result_ttl``: how long its
    result is kept after it ended for reading by id (``Client.future(task_id)``, ``taskq
    result``), by any client, fetched or not (seconds, a ``timedelta`` or text such as
    '1h'; 0: not kept; default: the master's ``--result-ttl``). ``on_failure(task_id,
    exception)`` runs as a task of its own once the task failed for good (after its retries;
    not when it was cancelled); ``on_success(task_id, result)`` once it returned.
    """
    options = make_options(timeout, retries, priority, queue, retry_on=retry_on,
                           backoff=backoff, max_backoff=max_backoff, jitter=jitter,
                           limit_key=limit_key, limit=limit, unique=unique,
                           unique_for=unique_for, resources=resources, expires=expires,
                           soft_timeout=soft_timeout, result_ttl=result_ttl)
    if on_failure is not None or on_success is not None:
        options = replace(options, on_failure=_encode_callback(on_failure, "on_failure"),
                          on_success=_encode_callback(on_success, "on_success"))
    if fn is None:
        return lambda f: TaskFunction(f, options)
    return TaskFunction(fn, options)


def _encode_callback(fn: Callable[..., Any] | None, name: str) -> bytes:
    """A callback's function, encoded as a task's is (b"": none)."""
    if fn is None:
        return b""
    if not callable(fn):
        raise ValueError(f"{name} must be a callable taking (task_id, ...), not {fn!r}")
    from taskq.protocol import bodies  # the submitter's side: the master never encodes one

    return bodies.encode_function(fn)


CATCH_UP = ("once", "skip")


def interval(every: float | timedelta | str) -> float:
    """``every`` as seconds: a number, a ``timedelta`` or text such as '30s' or '1h'."""
    if isinstance(every, timedelta):
        return every.total_seconds()
    if isinstance(every, str):
        return parse_duration(every)
    return float(every)


def _check_cron(cron: str) -> None:
    """ValueError saying what is wrong with a cron expression: a field out of range, the
    wrong number of fields, or a date that never comes (``0 2 30 2 *``, February 30)."""
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"bad cron expression {cron!r}: expected five fields (minute hour "
                         f"day month weekday), e.g. '0 2 * * *' (02:00 every day), "
                         f"not {len(fields)}")
    try:
        croniter(cron, datetime(2000, 1, 1)).get_next(float)
    except CroniterBadDateError:
        raise ValueError(f"bad cron expression {cron!r}: it names a date that never "
                         f"comes") from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ValueError(f"bad cron expression {cron!r}: {exc}".rstrip(".")) from None


def check(spec: Schedule) -> None:
    """ValueError naming what is wrong with a schedule's definition."""
    if not spec.name or len(spec.name) > 200 or ":" in spec.name:
        raise ValueError(f"bad schedule name {spec.name!r}: 1-200 characters, no ':'")
    if bool(spec.cron) == bool(spec.every):
        raise ValueError("give a schedule either cron or every, not both or neither")
    if spec.cron:
        _check_cron(spec.cron)
    if spec.every and not spec.every > 0:
        raise ValueError(f"every must be a positive interval, not {spec.every!r} s")
    try:
        ZoneInfo(spec.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {spec.tz!r}: expected an IANA name such as "
                         f"Europe/Berlin or UTC") from None
    if spec.catch_up not in CATCH_UP:
        raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP)}, not "
                         f"{spec.catch_up!r}")
