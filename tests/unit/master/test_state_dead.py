"""Dead letters: a task that failed for good keeps its call, and is replayed as a new task.

The broker's pure state (``taskq.master.state.dead`` and ``replays``), the names read from
a function's pickle without loading it, and the journal's copy across a restart.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from state_helpers import err, fetch_all, ids, join, make_state, ok, task

from taskq.client.jobs import parse_target
from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.master.state.dead import function_name
from taskq.protocol import bodies
from taskq.protocol.messages import ResultMsg, Status, TaskState

TRACEBACK = "Traceback (most recent call last):\n  File ...\nKeyError: 'missing'\n"


def raised(task_id: str) -> ResultMsg:
    return ResultMsg(task_id, Status.ERROR, b"exc", TRACEBACK)


def failed_once(state: BrokerState, task_id: str = "t0", now: float = 1.0) -> None:
    """Run ``task_id`` (queued) on worker w, which reports that it raised."""
    assert task_id in ids(state.lease("w", 10, now))
    state.complete("w", [raised(task_id)], now)


def one_failure(retries: int = 0, fn: bytes = b"f") -> BrokerState:
    state = make_state(max_payload=10_000)
    join(state, "w", queues=("q", "default"))
    state.submit([replace(task("t0", retries=retries, queue="q"), fn=fn)], 0.0)
    return state


def test_a_task_that_failed_for_good_keeps_its_call_and_why() -> None:
    state = one_failure(retries=1)
    failed_once(state)
    assert "t0" not in state.dead.letters  # a retry is left: not dead yet
    failed_once(state, now=2.0)

    letter = state.dead.letters["t0"]
    assert (letter.fn, letter.args, letter.options.queue) == (b"f", b"a", "q")
    assert letter.status is Status.ERROR
    assert (letter.error_type, letter.detail) == ("KeyError", "KeyError: 'missing'")
    row = state.dead.live(None, None)[0].row()
    assert row["task_id"] == "t0" and row["queue"] == "q" and row["replayed_as"] == []
    assert [d.task_id for d in state.drain_changes().dead] == ["t0"]


def test_tasks_that_succeeded_or_were_cancelled_are_not_dead_letters() -> None:
    state = make_state()
    join(state, "w")
    state.submit([task("good"), task("gone"), task("crash")], 0.0)
    state.cancel(["gone"])
    assert ids(state.lease("w", 10, 1.0)) == ["good", "crash"]
    state.complete("w", [ok("good"), ResultMsg("crash", Status.CRASHED, None,
                                                "the pool process died (signal 9)")], 2.0)
    assert list(state.dead.letters) == ["crash"]
    assert state.dead.letters["crash"].error_type == "crashed"


def test_a_replay_is_a_new_task_with_the_same_call_linked_both_ways() -> None:
    state = one_failure()
    failed_once(state)
    state.drain_changes()

    [out] = state.replay(["t0"], ["box2-r1"], "box2", 3.0, echo=True)

    assert (out.task_id, out.new_id, out.error) == ("t0", "box2-r1", "")
    assert out.task is not None and out.task.fn == b"f" and out.task.args == b"a"
    rec = state.tasks["box2-r1"]
    assert rec.state is TaskState.PENDING and rec.msg.outbox == "box2"
    assert rec.msg.options.queue == "q"
    assert state.dead.letters["t0"].replayed_as == ["box2-r1"]
    assert state.dead.origin["box2-r1"] == "t0"
    changes = state.drain_changes()
    assert [r.msg.task_id for r in changes.added] == ["box2-r1"]
    assert [d.task_id for d in changes.dead] == ["t0"]  # its link is journaled
    # the replay runs and succeeds; the original stays listed, replayed
    assert ids(state.lease("w", 1, 4.0)) == ["box2-r1"]
    state.complete("w", [ok("box2-r1")], 5.0)
    assert fetch_all(state, "box2")["box2-r1"].status is Status.OK
    assert state.dead.live(None, None)[0].row()["replayed_as"] == ["box2-r1"]


def test_a_replay_says_why_a_task_cannot_be_replayed() -> None:
    state = one_failure()
    state.submit([task("waiting"), task("fine")], 0.0)
    assert ids(state.lease("w", 10, 1.0)) == ["t0", "waiting", "fine"]
    state.complete("w", [raised("t0"), ok("fine")], 1.0)

    out = state.replay(["nope", "waiting", "fine", "t0"], ["b-1", "b-2", "b-3", "waiting"],
                       "b", 2.0)

    assert [r.new_id for r in out] == ["", "", "", ""]
    assert out[0].error == "no failed task nope on the master (see `taskq failed`)"
    assert out[1].error == "task waiting has not failed: it is leased"
    assert out[2].error == "task fine succeeded: nothing to replay"
    assert out[3].error == "task id waiting is taken"
    assert not state.dead.letters["t0"].replayed_as
    with pytest.raises(ValueError, match="as many new ids"):
        state.replay(["t0"], [], "b", 2.0)


def test_a_dead_letter_expires_with_the_history_then_is_forgotten() -> None:
    state = one_failure()
    failed_once(state)
    ended = state.dead.letters["t0"].ended
    keep = state.history.keep_s

    state.dead.prune(ended + keep - 1, keep, 10)
    assert not state.dead.letters["t0"].expired
    state.dead.prune(ended + keep + 1, keep, 10)
    letter = state.dead.letters["t0"]
    assert letter.expired and letter.fn == b"" and letter.args == b""
    assert state.dead.live(None, None) == []
    [out] = state.replay(["t0"], ["b-1"], "b", 2.0)
    assert "its call was dropped when the history retention (7 days" in out.error
    assert "b-1" not in state.tasks
    state.dead.prune(ended + 2 * keep - 1, keep, 10)
    assert "t0" in state.dead.letters  # remembered for another retention period
    state.dead.prune(ended + 2 * keep + 1, keep, 10)
    assert "t0" not in state.dead.letters
    written, gone = state.dead.drain()
    assert gone == ["t0"] and written == []  # forgotten: not written back


def test_dead_letters_beyond_the_history_bound_expire_oldest_first() -> None:
    state = make_state()
    join(state, "w")
    state.submit([task(f"t{i}") for i in range(4)], 0.0)
    assert len(state.lease("w", 10, 1.0)) == 4
    state.complete("w", [raised(f"t{i}") for i in range(4)], 1.0)

    state.dead.prune(state.history.wall(1.0), 3600.0, 2)

    assert [d.task_id for d in state.dead.live(None, None)] == ["t3", "t2"]
    assert state.dead.live_count == 2


def test_the_listing_filters_by_queue_and_time() -> None:
    state = make_state()
    join(state, "w", queues=("a", "b"))
    state.submit([task("ta", queue="a"), task("tb", queue="b")], 0.0)
    assert len(state.lease("w", 10, 1.0)) == 2
    state.complete("w", [raised("ta")], 1.0)
    state.complete("w", [err("tb")], 5.0)
    wall = state.history.wall
    assert [d.task_id for d in state.dead.live("a", None)] == ["ta"]
    assert [d.task_id for d in state.dead.live(None, wall(3.0))] == ["tb"]
    assert [d.task_id for d in state.dead.live(None, None)] == ["tb", "ta"]


def test_a_function_name_is_read_from_its_pickle_without_loading_it() -> None:
    def local(x: int) -> int:
        return x

    assert function_name(bodies.encode_function(json.dumps)) == "json:dumps"
    assert function_name(bodies.encode_function(parse_target("json:loads"))) == "json:loads"
    assert function_name(bodies.encode_function(local)).endswith(":" + local.__qualname__)
    assert function_name(b"not a pickle") == "?"
    assert function_name(b"") == "?"


def test_dead_letters_and_their_replays_survive_a_restart(tmp_path: Path) -> None:
    fn = bodies.encode_function(json.dumps)
    state = one_failure(fn=fn)
    journal = Journal(tmp_path / "j.db")
    try:
        journal.write(state.drain_changes())
        failed_once(state)
        journal.write(state.drain_changes())
        state.replay(["t0"], ["b-1"], "b", 2.0)
        journal.write(state.drain_changes())
    finally:
        journal.close()

    again = make_state()
    journal = Journal(tmp_path / "j.db")
    try:
        journal.load(again)
    finally:
        journal.close()
    letter = again.dead.letters["t0"]
    assert (letter.fn, letter.args, letter.options.queue) == (fn, b"a", "q")
    assert letter.function == "json:dumps"  # read by the journal's writer
    assert letter.replayed_as == ["b-1"] and again.dead.origin["b-1"] == "t0"
    assert letter.error_type == "KeyError"
    assert "b-1" in again.tasks
    [out] = again.replay(["t0"], ["b-2"], "b", 3.0)
    assert out.new_id == "b-2" and again.tasks["b-2"].msg.fn == fn


def test_a_replays_expiry_deadline_counts_from_the_replay() -> None:
    state = make_state()
    join(state, "w")
    msg = task("t0")
    state.submit([replace(msg, options=replace(msg.options, expires=60.0))], 0.0)
    failed_once(state, now=1.0)
    assert state.dead.letters["t0"].options.expires_at == 60.0  # the original's deadline

    [out] = state.replay(["t0"], ["b-1"], "b", 100.0)

    assert out.new_id == "b-1"
    assert state.tasks["b-1"].msg.options.expires_at == 160.0  # not expired at once
    assert ids(state.lease("w", 1, 101.0)) == ["b-1"]
