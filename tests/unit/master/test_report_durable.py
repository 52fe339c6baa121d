"""A worker's report is answered at once with a receipt: the results are durable once the
journal commits the receipt's ticket, and a later receipt (or a confirming call) says so.
Until then the worker keeps them, and re-sends them to a master of another run."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq.master.broker import Broker
from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions, WorkerHello
from taskq.protocol.replies import Receipt
from taskq.worker.acks import Unacked


def _journaled_results(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:  # another connection: only what was committed
        return {row[0] for row in db.execute("SELECT task_id FROM results")}


@pytest.fixture
def held_journal(tmp_path: Path) -> Iterator[tuple[Broker, threading.Event, Path]]:
    """A durable broker whose journal commits only once the test sets the event."""
    path = tmp_path / "journal.db"
    journal = Journal(path)
    go = threading.Event()
    write = journal.write

    def held_write(changes: object) -> None:
        assert go.wait(10), "the test never let the journal commit"
        write(changes)  # type: ignore[arg-type]

    broker = Broker(BrokerState(lost_after=60, max_lost=3, max_payload=1 << 20), journal)
    broker.register(WorkerHello("w1", "host", 1, 1, ("default",)))
    broker.submit([TaskMsg("box-1", "box", b"f", b"a", TaskOptions())], durable=True)
    journal.write = held_write  # type: ignore[method-assign]
    try:
        yield broker, go, path
    finally:
        go.set()
        broker.close()  # and its journal


def test_a_report_is_answered_before_its_commit_with_a_ticket(
        held_journal: tuple[Broker, threading.Event, Path]) -> None:
    broker, go, path = held_journal
    [task] = broker.take("w1", 1, wait=0).tasks
    receipt = broker.report("w1", [ResultMsg(task.task_id, Status.OK, b"v", worker="w1")])
    assert receipt.epoch == broker.info().epoch != ""
    assert receipt.ticket > receipt.durable, "the result is not journaled yet"
    assert _journaled_results(path) == set()
    go.set()
    confirmed = broker.report("w1", [], durable_to=receipt.ticket)  # waits for the commit
    assert confirmed.durable >= receipt.ticket
    assert _journaled_results(path) == {task.task_id}


def test_a_confirm_waits_no_longer_than_its_bound_when_the_journal_stalls(
        held_journal: tuple[Broker, threading.Event, Path]) -> None:
    broker, _, _ = held_journal
    [task] = broker.take("w1", 1, wait=0).tasks
    receipt = broker.report("w1", [ResultMsg(task.task_id, Status.OK, b"v", worker="w1")])
    confirmed = broker.report("w1", [], durable_to=receipt.ticket)  # journal held: bounded
    assert confirmed.durable < receipt.ticket


def test_unacked_keeps_results_until_a_receipt_of_the_same_run_covers_them() -> None:
    acks = Unacked()
    one, two = ResultMsg("t1", Status.OK, b"1"), ResultMsg("t2", Status.OK, b"2")
    acks.keep(Receipt("run-a", ticket=5, durable=3), [one])
    acks.keep(Receipt("run-a", ticket=7, durable=4), [two])
    assert len(acks) == 2 and acks.waiting_for("run-a") == 7
    acks.keep(Receipt("run-b", ticket=0, durable=9), [])  # another run's: proves nothing
    assert len(acks) == 2
    acks.keep(Receipt("run-a", ticket=0, durable=5), [])
    assert len(acks) == 1 and acks.waiting_for("run-a") == 7
    assert acks.resend("run-a") == []  # same run: nothing to send again
    assert acks.resend("run-b") == [two] and len(acks) == 0  # a restarted master gets it
    acks.keep(Receipt("run-b", ticket=0, durable=0), [one])  # no journal: nothing kept
    assert len(acks) == 0


def _journaled_holders(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT task_id, holder FROM tasks"))


def test_a_lease_names_the_ticket_the_worker_waits_for_before_it_starts(
        held_journal: tuple[Broker, threading.Event, Path]) -> None:
    """Before its start the journal must know who holds a task: a master killed between
    the two restores it unleased, and a task run there and elsewhere runs twice."""
    broker, go, path = held_journal
    leased = broker.take("w1", 1, wait=0)
    assert [t.task_id for t in leased.tasks] == ["box-1"]
    assert leased.ticket > 0, "a lease the journal does not have yet names its ticket"
    assert _journaled_holders(path) == {"box-1": ""}
    go.set()
    confirmed = broker.report("w1", [], durable_to=leased.ticket)  # the worker's wait
    assert confirmed.durable >= leased.ticket
    assert _journaled_holders(path) == {"box-1": "w1"}


def test_an_in_memory_lease_needs_no_wait() -> None:
    broker = Broker(BrokerState(lost_after=60, max_lost=3, max_payload=1 << 20), None)
    broker.register(WorkerHello("w1", "host", 1, 1, ("default",)))
    broker.submit([TaskMsg("box-1", "box", b"f", b"a", TaskOptions())], durable=True)
    leased = broker.take("w1", 1, wait=0)
    assert len(leased.tasks) == 1 and leased.ticket == 0
    broker.close()
