"""The broker's interface is declared once (``taskq.protocol.api.BrokerAPI``): the peer's
``Remote``, the master's ``Broker`` and ``Owned`` and the proxy agree with it, derived from
that declaration; and the parts of ``multiprocessing.managers`` taskq relies on still behave
as it expects."""

from __future__ import annotations

import inspect
from multiprocessing import managers
from typing import Any

import pytest

from taskq.errors import MasterError
from taskq.master.broker import Broker
from taskq.master.owned import CHECKED, Owned, refusal
from taskq.master.state import BrokerState
from taskq.net.managers import BrokerProxy, Server, _last_line
from taskq.protocol.api import CALLS, EXPOSED, Remote
from taskq.protocol.calls import Declared


def public_methods(cls: type) -> set[str]:
    return {n for klass in cls.__mro__[:-1] for n, v in vars(klass).items()
            if callable(v) and not n.startswith("_")}


def shape(sig: inspect.Signature, skip_self: bool = True) -> list[tuple[str, Any, Any]]:
    """A signature's parameters as (name, kind, default), without ``self``."""
    params = list(sig.parameters.values())[1 if skip_self else 0:]
    return [(p.name, p.kind, p.default) for p in params]


def test_the_broker_implements_every_declared_call_and_no_other() -> None:
    # the master's own lifecycle calls (and what its server tells it), never served
    lifecycle = {"reap", "start_reaper", "close", "open_claims", "peer_gone"}
    assert set(EXPOSED) == public_methods(Broker) - lifecycle
    for name, call in CALLS.items():
        assert shape(inspect.signature(getattr(Broker, name))) == shape(call.signature, False), name


def test_the_remote_owned_and_proxy_follow_the_declaration() -> None:
    remote = type(Remote(lambda *args: None))
    assert public_methods(remote) == set(EXPOSED) == set(BrokerProxy._exposed_)
    for name, call in CALLS.items():
        assert shape(inspect.signature(getattr(remote, name))) == shape(call.signature, False)
    assert set(EXPOSED) >= CHECKED
    for name in CHECKED:  # the calls Owned checks by hand take what the declaration says
        declared = shape(CALLS[name].signature, False)
        assert shape(inspect.signature(getattr(Owned, name))) == declared, name
    broker = Broker(BrokerState(lost_after=5, max_lost=3, max_payload=1 << 20))
    assert tuple(Owned(broker).calls) == EXPOSED
    assert all(refusal(call) == "" for call in CALLS.values())


def test_a_remote_sends_every_argument_in_declared_order() -> None:
    calls: list[tuple[object, ...]] = []

    def call(*args: object) -> int:
        calls.append(args)
        return 7

    remote = Remote(call)
    assert remote.submit([], durable=False) == 7
    remote.take("w", 3, wait=0.5)
    remote.cancel(["t"], running=True)
    remote.history(limit=5)
    assert calls == [("submit", [], False), ("take", "w", 3, 0.5, None, None),
                     ("cancel", ["t"], 0.0, "", True), ("history", None, False, None, 5)]
    with pytest.raises(TypeError):
        remote.take("w", 3, 0.5)  # type: ignore[call-arg]


def test_the_master_calls_with_the_flags_by_keyword() -> None:
    seen: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def method(*args: object, **kwargs: object) -> str:
        seen.append((args, kwargs))
        return "ok"

    cancel: Declared = CALLS["cancel"]
    assert cancel.positional == ("task_ids",)
    assert cancel.keywords == ("wait", "outbox", "running")
    assert cancel.apply(method, ["t"], 1.0, "box", True) == "ok"
    assert seen == [((["t"],), {"wait": 1.0, "outbox": "box", "running": True})]


def test_an_error_inside_the_master_is_told_by_its_last_line() -> None:
    text = ("\n" + "-" * 75 + "\nTraceback (most recent call last):\n  File \"x\", line 1\n"
            "RuntimeError: the journal could not be written: disk I/O error\n" + "-" * 75)
    assert _last_line(managers.RemoteError(text)) == (
        "RuntimeError: the journal could not be written: disk I/O error")
    assert issubclass(MasterError, Exception)


@pytest.mark.parametrize("name", ["handle_request", "serve_client", "accepter"])
def test_the_manager_internals_taskq_overrides_or_calls_still_exist(name: str) -> None:
    """taskq's Server subclasses managers.Server and replaces its accept loop and first
    request; a Python upgrade that renames these must fail here, not in production."""
    assert callable(getattr(managers.Server, name))
    assert issubclass(Server, managers.Server)


def test_the_manager_internals_the_proxy_uses_still_exist() -> None:
    assert callable(managers.BaseProxy._callmethod)
    params = list(inspect.signature(managers.BaseProxy._callmethod).parameters)
    assert params[:3] == ["self", "methodname", "args"]
    assert "taskq" in managers.listener_client  # type: ignore[attr-defined]
    assert hasattr(managers.Server, "public") or "public" in vars(managers.Server)
    handle = inspect.signature(managers.Server._handle_request)  # type: ignore[attr-defined]
    assert list(handle.parameters) == ["self", "c"]
