"""A reader's future of a result by id, without a master: the outcome a mirror gets when the
result expired on its way is ``ResultExpired``; options take a ``result_ttl``; the helpers
of ``taskq result`` say a value and a failure on one line."""

from __future__ import annotations

from datetime import timedelta

import pytest

import taskq
from taskq.client.client import Client
from taskq.client.future import TaskFuture
from taskq.client.retention import NotJSON, as_json, failure_line
from taskq.master.state.deps import dependency_failure
from taskq.protocol.messages import DEFAULT_OPTIONS, ResultMsg, Status
from taskq.protocol.options import make_options
from taskq.protocol.replies import EXPIRED_DETAIL


def test_a_mirror_whose_result_expired_on_its_way_raises_result_expired() -> None:
    refused = ResultMsg("other-1", Status.REFUSED,
                        detail=f"{EXPIRED_DETAIL}: task other-1 ended more than its "
                               f"result_ttl ago")
    future = TaskFuture(None, "reader-0")
    Client._settle(future, dependency_failure("reader-0", "other-1", refused), mirror=True)
    with pytest.raises(taskq.ResultExpired, match="other-1"):
        future.result(0)
    plain = TaskFuture(None, "reader-1")  # any other refusal stays what it was
    Client._settle(plain, dependency_failure("reader-1", "other-2", ResultMsg(
        "other-2", Status.REFUSED, detail="too big")), mirror=True)
    with pytest.raises(taskq.TaskRefused, match="too big"):
        plain.result(0)


def test_result_ttl_takes_seconds_a_timedelta_or_text_and_refuses_the_rest() -> None:
    assert make_options(result_ttl=90).result_ttl == 90.0
    assert make_options(result_ttl=timedelta(minutes=2)).result_ttl == 120.0
    assert make_options(result_ttl="1h30m").result_ttl == 5400.0
    assert make_options().result_ttl is None and DEFAULT_OPTIONS.result_ttl is None
    assert taskq.task(len, result_ttl=0).taskq_options.result_ttl == 0.0
    assert make_options(result_ttl=60).extra() == {"result_ttl": 60.0}  # journaled with it
    for bad in (-1, "soon", True, [1], float("inf")):
        with pytest.raises(ValueError, match="result_ttl must be 0 or more seconds"):
            make_options(result_ttl=bad)


def test_taskq_results_lines() -> None:
    assert as_json("t", {"a": [1, 2.5, None]}) == '{"a": [1, 2.5, null]}'
    for value, kind in (({1}, "a set"), (float("nan"), "a float"), (object(), "a object")):
        with pytest.raises(NotJSON, match=f"task t \\({kind}\\) is not JSON-serialisable"):
            as_json("t", value)
    assert failure_line(ValueError("bad\n  input")) == "ValueError: bad input"
    assert failure_line(KeyError()) == "KeyError"
