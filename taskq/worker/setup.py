"""Setup hooks: ``taskq worker --setup module:function`` runs a function once where the
tasks run, before the first of them (logging, Sentry, a database pool).

    worker start ── check(specs): each imported and found, else SetupError (one line) ──► exit 1
    processes pool: in each pool process, as it starts (``in_process``); it tells its
                    owner READY, or why its hook failed (``taskq.worker.pools.child``)
    threads pool:   once, in the worker's process, as the pool starts (``run``)
    asyncio pool:   once, in the pool's event loop (``run_async``: an ``async def`` is awaited)

A hook that raises keeps the worker from starting: ``SetupError`` names the hook and the
exception. A hook that is an ``async def`` runs to its end on an event loop of its own,
except in the asyncio pool, whose loop awaits it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from taskq.errors import SetupError
from taskq.worker import execute

Hook = Callable[[], object]


def resolve(spec: str) -> Hook:
    """The function ``module:function`` names; SetupError saying what is wrong."""
    module, sep, name = spec.partition(":")
    if not sep or not module.strip() or not name.strip():
        raise SetupError(f"bad --setup {spec!r}: expected MODULE:FUNCTION, e.g. "
                         f"myapp.worker:init_logging")
    try:
        target: object = importlib.import_module(module)
    except ImportError as exc:
        raise SetupError(f"bad --setup {spec!r}: could not import {module}: {exc}") from None
    except Exception as exc:
        raise SetupError(f"bad --setup {spec!r}: importing {module} raised "
                         f"{type(exc).__name__}: {exc}") from None
    for part in name.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise SetupError(f"bad --setup {spec!r}: {module} has no function {name}")
    return target


def check(specs: tuple[str, ...]) -> None:
    """At the worker's start: every hook can be found (SetupError for the first that
    cannot)."""
    for spec in specs:
        resolve(spec)


def failure(spec: str, exc: BaseException) -> SetupError:
    """The error of a hook that raised, in one line."""
    text = " ".join(str(exc).split())
    return SetupError(f"setup hook {spec} raised {type(exc).__name__}" +
                      (f": {text}" if text else ""))


def run(specs: tuple[str, ...]) -> None:
    """Call each hook in order (an ``async def`` on a loop of its own); SetupError for the
    first that is missing or raises."""
    for spec in specs:
        hook = resolve(spec)
        try:
            value = hook()
            if inspect.isawaitable(value):
                import asyncio  # only for an async hook: a pool process need not load it

                asyncio.run(_awaited(value))
        except Exception as exc:
            raise failure(spec, exc) from exc


async def run_async(specs: tuple[str, ...]) -> None:
    """``run`` in a running event loop: an ``async def`` hook is awaited in it."""
    for spec in specs:
        hook = resolve(spec)
        try:
            value = hook()
            if inspect.isawaitable(value):
                await value
        except Exception as exc:
            raise failure(spec, exc) from exc


async def _awaited(value: object) -> object:
    assert inspect.isawaitable(value)  # noqa: S101 -- checked by the caller
    return await value


def in_process(paths: tuple[str, ...], specs: tuple[str, ...]) -> None:
    """A pool process's initializer: the user's directories on ``sys.path``, then its
    hooks."""
    execute.import_from(paths)
    run(specs)
