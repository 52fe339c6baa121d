"""The typed facade of the broker's remote interface matches the broker itself, and the
parts of ``multiprocessing.managers`` taskq relies on still behave as it expects."""

from __future__ import annotations

import inspect
from multiprocessing import managers

import pytest

from taskq.errors import MasterError
from taskq.master.broker import Broker
from taskq.net.managers import BrokerProxy, Server, _last_line
from taskq.protocol.api import EXPOSED, Remote


def public_methods(cls: type) -> set[str]:
    return {n for klass in cls.__mro__[:-1] for n, v in vars(klass).items()
            if callable(v) and not n.startswith("_")}


def test_every_remote_method_is_a_broker_method_with_the_same_parameters() -> None:
    broker_calls = public_methods(Broker) - {"reap", "start_reaper", "close"}
    assert set(EXPOSED) == public_methods(Remote) == broker_calls
    for name in EXPOSED:
        remote = inspect.signature(getattr(Remote, name))
        real = inspect.signature(getattr(Broker, name))
        assert list(remote.parameters) == list(real.parameters), name
        for param in remote.parameters.values():
            assert param.default == real.parameters[param.name].default, (name, param.name)
        assert remote.return_annotation == real.return_annotation, name


def test_the_proxy_exposes_exactly_the_facade() -> None:
    assert BrokerProxy._exposed_ == EXPOSED


def test_a_remote_passes_the_method_name_and_arguments() -> None:
    calls: list[tuple[object, ...]] = []
    remote = Remote(lambda *args: calls.append(args) or 7)
    assert remote.submit([], False) == 7
    remote.take("w", 3, 0.5)
    assert calls == [("submit", [], False), ("take", "w", 3, 0.5)]


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
    assert "taskq" in managers.listener_client
    assert hasattr(managers.Server, "public") or "public" in vars(managers.Server)
    handle = inspect.signature(managers.Server._handle_request)
    assert list(handle.parameters) == ["self", "c"]
