"""What a remote call is, derived from its one declaration on the broker's interface.

The interface (``taskq.protocol.api.BrokerAPI``) is a ``typing.Protocol``; each of its
methods is one remote call, and says which of its arguments are claims (names a peer holds
as secrets: ``taskq.protocol.names``) with ``@claims(kind="parameter")``, or that it takes
none with ``@shared``. From that one declaration come, per call and once per process:

    the sender  (peer):    remote.cancel(ids, wait=1.0) ── call("cancel", ids, 1.0, "", False)
    the applier (master):  apply(method, ids, 1.0, "", False) ── method(ids, wait=1.0, ...)

Arguments cross positionally, in declared order, every one of them (defaults filled in by
the sender), so the master binds nothing per call. Both functions are generated from the
signature when the interface is first read, as fast as written by hand.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

CLAIM_KINDS = frozenset({
    "outbox",   # an outbox claim: the master turns it into the outbox's public name
    "worker",   # a worker claim: turned into the worker's public name
    "own_ids",  # task ids that must live under the call's outbox (the others are dropped)
    "tasks",    # task messages: each one's outbox is a claim, its id under that outbox
    "hello",    # a WorkerHello: its worker id is a claim
})
CLAIM_LIKE = frozenset({"outbox", "worker_id", "worker", "hello"})
"""Parameter names that carry a claim: a call with one of them that does not declare it as
a claim is refused (deny by default)."""

_MARK = "__taskq_claims__"


def claims(**params: str) -> Callable[[F], F]:
    """Declare which parameters of a remote call are claims: ``kind="parameter"``."""
    unknown = set(params) - CLAIM_KINDS
    if unknown:
        raise ValueError(f"unknown claim kinds {sorted(unknown)}; known: {sorted(CLAIM_KINDS)}")

    def mark(fn: F) -> F:
        missing = set(params.values()) - set(inspect.signature(fn).parameters)
        if missing:
            raise ValueError(f"{fn.__name__} claims parameters it lacks: {sorted(missing)}")
        setattr(fn, _MARK, dict(params))
        return fn

    return mark


def shared(fn: F) -> F:
    """Declare a remote call that takes no claim: whoever holds the key may make it."""
    setattr(fn, _MARK, {})
    return fn


@dataclass(frozen=True, slots=True)
class Declared:
    """One remote call as declared: its parameters in wire order and its claims (None:
    undeclared, so refused)."""

    name: str
    signature: inspect.Signature
    positional: tuple[str, ...]
    keywords: tuple[str, ...]
    claims: dict[str, str] | None
    apply: Callable[..., Any]  # apply(method, *wire_args) calls method with its keywords

    @property
    def params(self) -> tuple[str, ...]:
        return self.positional + self.keywords

    def unclaimed(self) -> list[str]:
        """Parameters named like a claim that the declaration does not name as one."""
        claimed = set((self.claims or {}).values())
        return [p for p in self.params if p in CLAIM_LIKE and p not in claimed]


def members(api: type) -> list[str]:
    """The remote calls of an interface (a Protocol, maybe extending others), in order."""
    names: dict[str, None] = {}
    for klass in reversed(api.__mro__):
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and inspect.isfunction(value):
                names[name] = None
    return list(names)


@cache
def declared(api: type) -> dict[str, Declared]:
    """Every remote call of ``api``, by name (read once per interface)."""
    out = {}
    for name in members(api):
        fn = getattr(api, name)
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]  # without self
        sig = sig.replace(parameters=params)
        positional = tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)
        keywords = tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)
        if len(positional) + len(keywords) != len(params):
            raise TypeError(f"{name}: remote calls take plain and keyword-only parameters")
        out[name] = Declared(name, sig, positional, keywords, getattr(fn, _MARK, None),
                             _applier(name, positional, keywords))
    return out


def _generate(name: str, source: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    exec(compile(source, f"<taskq call {name}>", "exec"), namespace)  # noqa: S102
    fn: Callable[..., Any] = namespace[name]
    return fn


def _applier(name: str, positional: tuple[str, ...], keywords: tuple[str, ...],
             ) -> Callable[..., Any]:
    """``apply(method, *wire_args)``: the method called with its keyword-only arguments
    by keyword."""
    params = ", ".join(("_method", *positional, *keywords))
    args = ", ".join((*positional, *(f"{k}={k}" for k in keywords)))
    return _generate(name, f"def {name}({params}):\n    return _method({args})\n", {})


def sender(call: Declared) -> Callable[..., Any]:
    """The peer's method for ``call``: its declared signature, sending every argument
    positionally in declared order through ``self._call(name, *args)``."""
    namespace: dict[str, Any] = {}
    parts = ["self"]
    for param in call.signature.parameters.values():
        if param.kind is param.KEYWORD_ONLY and "*" not in parts:
            parts.append("*")
        text = param.name
        if param.default is not param.empty:
            namespace[f"_default_{param.name}"] = param.default
            text += f"=_default_{param.name}"
        parts.append(text)
    args = ", ".join((repr(call.name), *call.params))
    source = f"def {call.name}({', '.join(parts)}):\n    return self._call({args})\n"
    return _generate(call.name, source, namespace)
