"""The broker as peers reach it: exactly the calls of ``BrokerAPI``, each one's declared claims
turned into public names and checked against their owner (``taskq.protocol.names`` says what a
claim and a public name are; ``taskq.protocol.calls`` how a call declares its claims)::

    peer ── call(claim, …) ──► Owned.calls[name] ── claims → public names ──► Broker

Deny by default: a call the interface declares neither ``@claims`` nor ``@shared``, or whose
parameter is named like a claim (outbox, worker_id, ...) without declaring it, is refused.
Outbox and worker claims are translated here for every call that declares them; the claims
that need more (task messages, a WorkerHello, task ids under an outbox) are checked by the
methods of ``Owned`` of the same name, which get the outbox or worker already translated.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from taskq import logs
from taskq.net import serving
from taskq.protocol.api import BrokerAPI
from taskq.protocol.calls import Declared, declared
from taskq.protocol.messages import MIRROR_FN, TaskMsg, WorkerHello
from taskq.protocol.names import NotYours, checked_claim, outbox_name, worker_name
from taskq.protocol.replies import CancelOutcome, ClusterStatus, MasterInfo, Replayed

if TYPE_CHECKING:
    from taskq.master.broker import Broker

log = logs.get_logger(__name__)
Served = Callable[..., Any]  # served(*wire_args) -> the call's reply


def _box(claim: Any) -> str:
    return outbox_name(checked_claim(claim, "an outbox"))


def _worker(claim: Any) -> str:
    return worker_name(checked_claim(claim, "a worker id"))


TRANSLATED: dict[str, Callable[[Any], str]] = {"outbox": _box, "worker": _worker}
"""Claim kinds turned into public names before the call; the other kinds need a method of
``Owned`` that checks them."""


class Owned:
    """The calls of ``api`` as peers may make them, by name in ``calls``; see the module
    docstring. The methods below are the calls whose claims need more than a translation."""

    def __init__(self, broker: Broker,
                 keys_in_use: Callable[[], dict[str, int]] | None = None,
                 api: type = BrokerAPI) -> None:
        self._broker = broker
        self._keys_in_use = keys_in_use
        self.calls: dict[str, Served] = {name: self._serve(call)
                                         for name, call in declared(api).items()}

    def _serve(self, call: Declared) -> Served:
        """What serves ``call``: its claims checked, then the broker's (or a check's) method."""
        reason = refusal(call, hasattr(self._broker, call.name))
        if reason:
            log.warning("call_not_served", method=call.name, reason=reason)
            return partial(_refuse, f"{call.name} is not served: {reason}")
        target = getattr(self if call.name in CHECKED else self._broker, call.name)
        checks = [(call.params.index(param), TRANSLATED[kind])
                  for kind, param in (call.claims or {}).items() if kind in TRANSLATED]
        return _dispatch(call, target, checks)

    # ------------------------------------------------------------------ submitters

    def hello(self, outbox: str, *, ended: list[str] | None = None) -> MasterInfo:
        return self._broker.hello(outbox, ended=_own_ids(outbox, ended or []))

    def submit(self, tasks: list[TaskMsg], *, durable: bool = True) -> int:
        claims = [msg.outbox for msg in tasks]
        for msg in tasks:
            if type(msg) is not TaskMsg:
                raise NotYours(f"submit takes task messages, not {type(msg).__name__}")
            box = _box(msg.outbox)
            if type(msg.task_id) is not str or not msg.task_id.startswith(box + "-"):
                log.warning("task_refused", outbox=box, reason="task id outside its outbox")
                raise NotYours(f"task id {str(msg.task_id)[:80]!r} does not belong to its "
                               f"outbox (task ids start with the outbox's public name)")
            msg.outbox = box
            _check_deps(msg)
        try:
            return self._broker.submit(tasks, durable=durable)
        except serving.Parked:  # waits for room, then runs again from here: as it came
            for msg, claim in zip(tasks, claims, strict=True):
                msg.outbox = claim
            raise

    def replay(self, task_ids: list[str], new_ids: list[str], *, outbox: str,
               echo: bool = False) -> list[Replayed]:
        if _own_ids(outbox, new_ids) != new_ids:
            raise NotYours("a replay's new task ids must start with its outbox's public name")
        if type(task_ids) is not list or not all(type(t) is str for t in task_ids):
            raise NotYours("task ids must be a list of strings")
        return self._broker.replay(task_ids, new_ids, outbox=outbox, echo=bool(echo))

    def known(self, task_ids: list[str]) -> list[str]:
        if type(task_ids) is not list:
            raise NotYours("task ids must be a list of strings")
        return self._broker.known([t for t in task_ids if type(t) is str])

    def cancel(self, task_ids: list[str], *, wait: float = 0.0, outbox: str = "",
               running: bool = False) -> CancelOutcome:
        mine = _own_ids(outbox, task_ids)
        out = self._broker.cancel(mine, wait=wait, outbox=outbox, running=running is True)
        kept = set(mine)
        out.unknown.extend(t for t in task_ids if t not in kept)
        return out

    # ------------------------------------------------------------------ workers

    def register(self, hello: WorkerHello) -> MasterInfo:
        if type(hello) is not WorkerHello:
            raise NotYours(f"register takes a WorkerHello, not {type(hello).__name__}")
        hello.worker_id = _worker(hello.worker_id)
        return self._broker.register(hello)

    # ------------------------------------------------------------------ admin

    def status(self) -> ClusterStatus:
        status = self._broker.status()
        if self._keys_in_use is not None:
            status.keys = self._keys_in_use()
        return status


CHECKED = frozenset(name for name, value in vars(Owned).items()
                    if inspect.isfunction(value) and not name.startswith("_"))
"""The calls served through a method of ``Owned`` (their checks need more than TRANSLATED)."""


def refusal(call: Declared, implemented: bool = True) -> str:
    """Why ``call`` may not be served ("" if it may)."""
    if call.claims is None:
        return "it declares neither its claims (@claims) nor that it takes none (@shared)"
    unclaimed = call.unclaimed()
    if unclaimed:
        return f"{', '.join(unclaimed)} look like claims, but the call does not declare them"
    unchecked = set(call.claims) - set(TRANSLATED)
    if unchecked and call.name not in CHECKED:
        return f"no check on the master for its claims of kind {', '.join(sorted(unchecked))}"
    if not implemented:
        return "the broker does not implement it"
    return ""


def _refuse(reason: str, *args: Any) -> Any:
    raise NotYours(reason)


def _dispatch(call: Declared, target: Served, checks: list[tuple[int, Callable[[Any], str]]],
              ) -> Served:
    """``target`` called with the wire's arguments, the claims at ``checks`` translated."""
    apply = call.apply
    if not checks:
        return partial(apply, target)
    arity, name = len(call.params), call.name

    def served(*args: Any) -> Any:
        if len(args) != arity:
            raise NotYours(f"{name} takes {arity} arguments, not {len(args)}")
        values = list(args)
        for at, check in checks:
            values[at] = check(values[at])
        return apply(target, *values)

    return served


def _own_ids(box: str, task_ids: Any) -> list[str]:
    """The task ids among ``task_ids`` that live under outbox ``box``."""
    if type(task_ids) is not list:
        raise NotYours("task ids must be a list of strings")
    prefix = box + "-"
    return [t for t in task_ids if type(t) is str and t.startswith(prefix)]


def _check_deps(msg: TaskMsg) -> None:
    """A task's dependencies are a tuple of task ids (one for a mirror); inputs are the
    master's to attach, never a submitter's."""
    deps = msg.deps
    if type(deps) is not tuple or not all(type(d) is str for d in deps):
        raise NotYours("a task's dependencies must be a tuple of task ids")
    if msg.fn == MIRROR_FN and len(deps) != 1:
        raise NotYours("a task with no function mirrors exactly one dependency")
    msg.inputs = ()
