"""The traceparents a task and a result carry: on the wire, in the journal's options, and
from a failed attempt to its retry in the broker's state; and what a worker's span says of
an outcome it knows only by its text."""

from __future__ import annotations

import pickle

from state_helpers import err, join, make_state, task

from taskq.protocol.messages import ResultMsg, Status, TaskOptions
from taskq.worker.tracing import _failure

SUBMIT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ATTEMPT = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"


def test_traceparents_cross_the_wire_and_the_journal() -> None:
    options = TaskOptions(retries=1, trace=SUBMIT, trace_prev=ATTEMPT)
    assert pickle.loads(pickle.dumps(options)) == options
    assert options.extra() == {"trace": SUBMIT, "trace_prev": ATTEMPT}
    assert TaskOptions.with_extra(None, 1, 0, "default", options.extra()) == options
    result = ResultMsg("t", Status.ERROR, b"x", trace=ATTEMPT)
    assert pickle.loads(pickle.dumps(result)).trace == ATTEMPT
    assert TaskOptions().extra() == {}  # an untraced task journals nothing more


def test_a_retry_carries_the_span_of_the_attempt_before_it() -> None:
    state = make_state()
    msg = task("a", retries=1)
    msg.options = TaskOptions(retries=1, trace=SUBMIT)
    state.submit([msg], now=0)
    join(state, "w")
    (first,) = state.lease("w", 1, now=0)
    assert first.options.trace_prev == ""
    failed = err("a")
    failed.trace = ATTEMPT
    state.complete("w", [failed], now=1)
    (second,) = state.lease("w", 1, now=1)
    assert (second.attempt, second.options.trace, second.options.trace_prev) == \
        (1, SUBMIT, ATTEMPT)
    assert state.drain_changes().updated  # journaled with its options


def test_an_outcome_known_by_its_text_names_its_exception() -> None:
    trace = 'Traceback (most recent call last):\n  File "t.py", line 1\nValueError: no: way\n'
    assert _failure(ResultMsg("t", Status.ERROR, b"", trace)) == ("ValueError", "no: way",
                                                                  trace)
    assert _failure(ResultMsg("t", Status.TIMEOUT, None, "ran past its 1 s timeout")) == (
        "taskq.TaskTimeout", "ran past its 1 s timeout", "")
    assert _failure(ResultMsg("t", Status.OK, b"")) is None
    assert _failure(ResultMsg("t", Status.CANCELLED, None, "stopped")) is None
