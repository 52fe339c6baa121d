"""The wire format: encoding functions, arguments, results and errors, and the messages."""

from __future__ import annotations

import functools
import importlib
import pickle
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from taskq.client.jobs import parse_target
from taskq.errors import (
    RemoteError,
    RemoteTraceback,
    SerializationError,
    TaskCrashed,
    TaskLoadError,
    TaskRefused,
    TaskTimeout,
    WorkerLost,
)
from taskq.protocol import bodies, messages
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions
from taskq.worker import execute


class CustomError(Exception):
    """A picklable exception with an attribute of its own."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class LockedError(Exception):
    """An exception that cannot be pickled: it carries a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class TwoArgError(Exception):
    """Pickles, but cannot be unpickled: its args do not match its constructor."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"{left} and {right}")


def raised(exc: BaseException) -> BaseException:
    """The exception with a real traceback, as a task would produce it."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def make_adder(n: int) -> Any:
    def add(x: int) -> int:
        return x + n
    return add


def roundtrip_function(fn: Any) -> Any:
    return bodies.decode_function(bodies.encode_function(fn))


# --------------------------------------------------------------------------- functions, args


def test_lambda_closure_and_partial_survive_encoding() -> None:
    offset = 10
    assert roundtrip_function(lambda x: x * 2 + offset)(3) == 16
    assert roundtrip_function(make_adder(5))(1) == 6
    assert roundtrip_function(functools.partial(pow, 2))(5) == 32
    assert roundtrip_function(functools.partial(make_adder(1), x=41))() == 42


def test_encode_function_refuses_non_callables_and_unpicklable_closures() -> None:
    with pytest.raises(TypeError, match="only run callables, not int"):
        bodies.encode_function(3)
    lock = threading.Lock()

    def holds_lock() -> bool:
        return lock.locked()

    with pytest.raises(SerializationError, match="holds_lock could not be pickled"):
        bodies.encode_function(holds_lock)


def test_decode_call_returns_function_args_and_kwargs() -> None:
    fn, args, kwargs = bodies.decode_call(bodies.encode_function(make_adder(2)),
                                        bodies.encode_args((1,), {"y": [1, 2]}))
    assert fn(*args) == 3
    assert args == (1,)
    assert kwargs == {"y": [1, 2]}


def test_encode_args_names_the_unpicklable_positional_argument() -> None:
    with pytest.raises(SerializationError) as info:
        bodies.encode_args((1, threading.Lock(), 3), {})
    assert "argument 1 (lock) could not be pickled" in str(info.value)
    assert info.value.__cause__ is not None


def test_encode_args_names_the_unpicklable_keyword_argument() -> None:
    with pytest.raises(SerializationError, match=r"keyword argument 'x' \(lock\)"):
        bodies.encode_args((1, 2), {"ok": "fine", "x": threading.Lock()})


def test_encode_args_keeps_large_buffers() -> None:
    blob = bytearray(b"z" * 100_000)
    args, kwargs = bodies.decode_args(bodies.encode_args((blob,), {"view": memoryview(b"abc")}))
    assert args == (blob,)
    assert bytes(kwargs["view"]) == b"abc"


_MAIN_SCRIPT = """
import dataclasses, sys
from taskq.protocol import bodies

@dataclasses.dataclass
class Point:
    x: int

def double(v):
    return 2 * v

args = ([Point(3)], {"fn": double, "kind": Point, "data": b"d" * 200_000, "n": [1.5, "s"]})
sys.stdout.write(bodies.encode_args(*args).hex())
"""


def test_arguments_defined_in_main_travel_by_value() -> None:
    # Point and double exist only in the script's __main__: stored by reference, they could
    # not be loaded here (this process's __main__ is another one).
    out = subprocess.run([sys.executable, "-c", _MAIN_SCRIPT], capture_output=True,
                         text=True, check=True, timeout=60)
    (point,), kwargs = bodies.decode_args(bytes.fromhex(out.stdout))
    assert point.x == 3 and type(point).__name__ == "Point"
    assert kwargs["fn"](21) == 42
    assert kwargs["kind"](4) == type(point)(4)
    assert kwargs["data"] == b"d" * 200_000 and kwargs["n"] == [1.5, "s"]


def test_plain_data_is_pickled_by_the_standard_pickler() -> None:
    # no cloudpickle needed: the bytes load with nothing but the standard library
    value = {"a": [1, 2.5, "x", b"y" * 100_000], "t": (None, True), "s": {3}}
    assert pickle.loads(bodies.encode_value(value)) == value
    assert bodies.encode_value(value) == pickle.dumps(value, protocol=messages.PICKLE_PROTOCOL)

# --------------------------------------------------------------------------- errors


def test_error_keeps_its_type_and_gets_the_remote_traceback_as_cause() -> None:
    exc = raised(CustomError("bad input", code=7))
    decoded = bodies.decode_error(bodies.encode_error(exc))
    assert type(decoded) is CustomError
    assert str(decoded) == "bad input"
    assert decoded.code == 7  # type: ignore[attr-defined]
    cause = decoded.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "CustomError: bad input" in cause.text
    assert "in raised" in cause.text
    assert str(cause) == cause.text


def test_builtin_error_round_trips() -> None:
    decoded = bodies.decode_error(bodies.encode_error(raised(KeyError("k"))))
    assert isinstance(decoded, KeyError)
    assert decoded.args == ("k",)


@pytest.mark.parametrize(("exc", "type_name"), [
    (LockedError("with a lock"), "LockedError"),
    (TwoArgError("a", "b"), "TwoArgError"),
])
def test_unpicklable_error_becomes_remote_error(exc: BaseException, type_name: str) -> None:
    decoded = bodies.decode_error(bodies.encode_error(raised(exc)))
    assert isinstance(decoded, RemoteError)
    assert decoded.type_name == type_name
    assert decoded.message == str(exc)
    assert str(decoded) == f"{type_name}: {exc}"
    assert f"{type_name}: {exc}" in decoded.traceback_text
    assert isinstance(decoded.__cause__, RemoteTraceback)
    # A RemoteError can itself travel again.
    again = pickle.loads(pickle.dumps(decoded))
    assert (again.type_name, again.message) == (type_name, str(exc))


def test_decode_result_returns_value_or_raises_task_error() -> None:
    ok = ResultMsg("t", Status.OK, bodies.encode_value({"a": 1}))
    assert bodies.decode_result(ok) == {"a": 1}
    body = bodies.encode_error(raised(ValueError("nope")))
    with pytest.raises(ValueError, match="nope") as info:
        bodies.decode_result(ResultMsg("t", Status.ERROR, body))
    assert isinstance(info.value.__cause__, RemoteTraceback)


def test_decode_result_of_an_unloadable_value_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="could not be unpickled here"):
        bodies.decode_result(ResultMsg("t", Status.OK, b"not a pickle"))


@pytest.mark.parametrize(("status", "error"), [
    (Status.CRASHED, TaskCrashed),
    (Status.TIMEOUT, TaskTimeout),
    (Status.LOST, WorkerLost),
    (Status.REFUSED, TaskRefused),
])
def test_decode_result_raises_for_failure_statuses(status: Status,
                                                   error: type[Exception]) -> None:
    result = ResultMsg("t", status, None, detail=f"because {status}")
    with pytest.raises(error) as info:
        bodies.decode_result(result)
    assert str(info.value) == f"because {status}"
    assert result.failed


def test_encode_value_refuses_unpicklable_results() -> None:
    with pytest.raises(SerializationError, match=r"result \(lock\) could not be pickled"):
        bodies.encode_value(threading.Lock())


# --------------------------------------------------------------------------- execute.run


def payload(fn: Any, args: Any, retry_on: tuple[str, ...] = ()) -> execute.Payload:
    fn_bytes = fn if isinstance(fn, bytes) else bodies.encode_function(fn)
    return execute.Payload(fn=fn_bytes, args=args, retry_on=retry_on)


def run(fn: Any, *args: Any, **kwargs: Any) -> tuple[Status, bytes, str]:
    ran = execute.run(payload(fn, bodies.encode_args(args, kwargs)))
    return ran.status, ran.body, ran.detail


def test_run_says_whether_the_failure_is_one_retry_on_names() -> None:
    def fail(exc: BaseException) -> None:
        raise exc

    def retry(exc: BaseException, names: tuple[str, ...]) -> bool:
        return execute.run(payload(fail, bodies.encode_args((exc,), {}), names)).retry

    assert retry(ValueError("x"), ())  # none named: any exception the task raised
    assert retry(FileNotFoundError("x"), ("builtins:OSError",))  # a subclass matches
    assert not retry(ValueError("x"), ("builtins:OSError", "no.such.module:Error"))
    ok = execute.run(payload(len, bodies.encode_args(("ab",), {})))
    assert ok.status is Status.OK and not ok.retry


def test_run_returns_the_encoded_value() -> None:
    status, body, detail = run(lambda a, b=0: a + b, 2, b=3)
    assert (status, detail) == (Status.OK, "")
    assert bodies.decode_result(ResultMsg("t", status, body)) == 5


def test_run_encodes_the_raised_exception() -> None:
    def fail() -> None:
        raise CustomError("from the task", code=3)

    status, body, _ = run(fail)
    assert status is Status.ERROR
    decoded = bodies.decode_error(body)
    assert isinstance(decoded, CustomError)
    assert decoded.code == 3
    assert "in fail" in str(decoded.__cause__)


def test_run_treats_system_exit_as_the_tasks_outcome() -> None:
    status, body, _ = run(sys.exit, 4)
    assert status is Status.ERROR
    decoded = bodies.decode_error(body)
    assert isinstance(decoded, SystemExit)
    assert decoded.code == 4


def test_run_with_an_unpicklable_result_is_a_serialization_error() -> None:
    status, body, _ = run(threading.Lock)
    assert status is Status.ERROR
    decoded = bodies.decode_error(body)
    assert type(decoded) is SerializationError
    assert "result (lock) could not be pickled" in str(decoded)


def test_run_with_a_function_from_a_missing_module_is_a_load_error(tmp_path: Path) -> None:
    name = f"taskq_gone_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("def job(x):\n    return x + 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(name)
        fn_bytes = bodies.encode_function(module.job)
        assert bodies.decode_function(fn_bytes)(1) == 2  # by reference, while importable
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
    assert name.encode() in fn_bytes

    ran = execute.run(payload(fn_bytes, bodies.encode_args((1,), {})))
    status, body, retry = ran.status, ran.body, ran.retry
    assert not retry  # a task that cannot be loaded is not retried
    assert status is Status.UNLOADABLE  # another worker may load it
    why = ran.detail.splitlines()[0]
    assert why == f"could not import {name}: No module named {name!r}"
    assert "Traceback" in ran.detail  # then where the import failed
    decoded = bodies.decode_error(body)
    assert isinstance(decoded, TaskLoadError)
    assert str(decoded).endswith(why)
    # as the master ends it when no worker could load it: the submitter gets TaskLoadError
    with pytest.raises(TaskLoadError, match=name):
        bodies.decode_result(ResultMsg("t", status, detail=why))


def test_run_with_corrupt_arguments_is_a_load_error() -> None:
    ran = execute.run(payload(len, b"garbage"))
    status, body = ran.status, ran.body
    assert status is Status.UNLOADABLE
    assert ran.detail.startswith("could not load the task: ")
    decoded = bodies.decode_error(body)
    assert isinstance(decoded, TaskLoadError)
    assert "could not load the task" in str(decoded)


def test_a_function_named_by_path_is_imported_when_it_is_loaded(tmp_path: Path) -> None:
    """``taskq submit mod:fn`` names a function by import path: a worker where the module
    does not import finds out as it loads the task (UNLOADABLE), not as it runs it."""
    missing = execute.run(payload(parse_target("no_such_mod_x1:double"), bodies.encode_args(
        (1,), {})))
    assert missing.status is Status.UNLOADABLE
    assert missing.detail.startswith("could not import no_such_mod_x1: ")
    (tmp_path / "here_mod_x1.py").write_text("def double(x):\n    return 2 * x\n")
    sys.path.insert(0, str(tmp_path))
    try:
        ran = execute.run(payload(parse_target("here_mod_x1:double"), bodies.encode_args(
            (21,), {})))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("here_mod_x1", None)
    assert ran.status is Status.OK and pickle.loads(ran.body) == 42


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_messages_survive_pickling(dumps: Any) -> None:
    msg = TaskMsg("id-1", "outbox-1", b"fn", b"args",
                  TaskOptions(timeout=2.5, retries=3, priority=-2, queue="gpu"), attempt=4)
    back = pickle.loads(dumps(msg))
    assert back == msg
    assert back.size == len(b"fn") + len(b"args")
    assert back.options == TaskOptions(2.5, 3, -2, "gpu")

    for result in [ResultMsg("id-1", Status.OK, b"body", "", "host:1", 0.5),
                   ResultMsg("id-2", Status.LOST, None, "gone", "", 0.0)]:
        back_result = pickle.loads(dumps(result))
        assert back_result == result
        assert type(back_result.status) is Status
        assert back_result.status is result.status
        assert back_result.failed is (result.status is not Status.OK)



def test_default_options_travel_by_name_and_load_as_the_defaults_themselves() -> None:
    from taskq.protocol import restricted

    msg = TaskMsg("id-1", "outbox-1", b"fn", b"args", messages.DEFAULT_OPTIONS)
    custom = TaskMsg("id-2", "outbox-1", b"fn", b"args", TaskOptions(queue="gpu"))
    blob = pickle.dumps([msg, custom], 5)
    assert b"DEFAULT_OPTIONS" in blob
    loaded, loaded_custom = restricted.loads(blob)  # as the master reads a submit
    assert loaded.options is messages.DEFAULT_OPTIONS
    assert loaded_custom.options == TaskOptions(queue="gpu")
    assert loaded_custom.options is not messages.DEFAULT_OPTIONS
    # equal to the defaults, yet another object: its fields travel, it loads as an equal
    assert pickle.loads(pickle.dumps(TaskOptions(), 5)) == messages.DEFAULT_OPTIONS

def test_result_status_given_as_text_becomes_a_status() -> None:
    result = ResultMsg("t", "timeout")  # type: ignore[arg-type]
    assert result.status is Status.TIMEOUT
    with pytest.raises(ValueError):
        ResultMsg("t", "exploded")  # type: ignore[arg-type]
