"""A worker's report is answered only once its results are journaled: the worker forgets a
result when the call returns, so a master SIGKILLed right after must still have it (else the
task would be restored as leased and run again)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from taskq.master.broker import Broker
from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, TaskOptions, WorkerHello


def _journaled_results(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:  # another connection: only what was committed
        return {row[0] for row in db.execute("SELECT task_id FROM results")}


def test_a_report_returns_only_once_its_results_are_committed(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    broker = Broker(BrokerState(lost_after=60, max_lost=3, max_payload=1 << 20), journal)
    try:
        broker.register(WorkerHello("w1", "host", 1, 1, ("default",)))
        broker.submit([TaskMsg("box-1", "box", b"f", b"a", TaskOptions())], durable=True)
        [task] = broker.take("w1", 1, wait=0)
        held = threading.Event()
        original = journal.wait

        def slow_wait(ticket: int) -> None:  # the commit is under way while report waits
            held.set()
            original(ticket)

        journal.wait = slow_wait  # type: ignore[method-assign]
        broker.report("w1", [ResultMsg(task.task_id, Status.OK, b"v", worker="w1")])
        assert held.is_set(), "report did not wait for the journal"
        assert _journaled_results(path) == {task.task_id}
    finally:
        broker.close()  # and its journal
