"""Collecting a named job's results (``taskq results``) against a real in-memory Broker."""

from __future__ import annotations

from typing import Any

import pytest

from taskq.client import jobs
from taskq.master.broker import Broker
from taskq.master.state import BrokerState
from taskq.protocol import bodies
from taskq.protocol.api import CALLS, Remote
from taskq.protocol.messages import ResultMsg, Status, TaskMsg, WorkerHello


class RacingBroker:
    """Calls the broker directly; the first time the open count is asked for, the worker's
    report lands just before it: after the collector's last empty fetch."""

    def __init__(self, broker: Broker, land: list[ResultMsg]) -> None:
        self.broker, self.land = broker, land
        self.remote = Remote(self.call)

    def call(self, method: str, *args: Any) -> Any:
        if method == "open_count" and self.land:
            self.broker.report("w1", self.land, started=[])
            self.land = []
        return CALLS[method].apply(getattr(self.broker, method), *args)


def _job_with_leased_tasks(n: int) -> tuple[Broker, list[TaskMsg]]:
    broker = Broker(BrokerState(lost_after=60, max_lost=3, max_payload=1 << 20))
    outbox = jobs.outbox_of("later")
    tasks = [TaskMsg(f"later-{i}", outbox, b"f", bodies.encode_args((i,), {})) for i in range(n)]
    broker.submit(tasks, durable=False)
    broker.register(WorkerHello("w1", "host", 1, 1, ("default",)))
    assert len(broker.take("w1", n, wait=0).tasks) == n
    return broker, tasks


def _ok(task: TaskMsg, value: int) -> ResultMsg:
    return ResultMsg(task.task_id, Status.OK, bodies.encode_value(value), worker="host:1")


class Written:
    """A ``write`` for ``collect`` that keeps what it was given; it fails on the batches
    whose numbers (from 1) are in ``fail_on``."""

    def __init__(self, fail_on: tuple[int, ...] = (), taken: int = 0) -> None:
        self.batches: list[list[jobs.JobResult]] = []
        self.calls = 0
        self.fail_on = fail_on
        self.taken = taken  # how many of a failing batch the reader took

    def __call__(self, batch: list[jobs.JobResult]) -> None:
        self.calls += 1
        if self.calls in self.fail_on:
            self.batches.append(batch[:self.taken])
            raise jobs.OutputLost("stdout closed", taken=self.taken)
        self.batches.append(batch)

    @property
    def values(self) -> list[Any]:
        return sorted(r.value for batch in self.batches for r in batch)


def test_results_that_land_after_the_last_fetch_are_still_collected() -> None:
    broker, tasks = _job_with_leased_tasks(5)
    broker.report("w1", [_ok(t, 10 * i) for i, t in enumerate(tasks[:2])], started=[])
    racing = RacingBroker(broker, [_ok(t, 10 * i) for i, t in enumerate(tasks) if i >= 2])
    written = Written()
    assert jobs.collect(racing.remote, "later", True, 5, written) == 0
    assert written.values == [0, 10, 20, 30, 40]
    broker.hello(jobs.outbox_of("later"))  # a new collector: nothing is left to send it
    assert broker.fetch(jobs.outbox_of("later"), [], max_n=100, wait=0).results == []


def test_without_wait_the_open_tasks_are_counted_and_nothing_is_lost() -> None:
    broker, tasks = _job_with_leased_tasks(3)
    racing = RacingBroker(broker, [_ok(tasks[0], 7)])
    written = Written()
    assert jobs.collect(racing.remote, "later", False, None, written) == 2
    assert written.values == [7]


def test_a_batch_leaves_the_master_only_after_it_was_written() -> None:
    broker, tasks = _job_with_leased_tasks(3)
    racing = RacingBroker(broker, [])
    broker.report("w1", [_ok(tasks[0], 0)], started=[])
    first = Written()
    assert jobs.collect(racing.remote, "later", False, None, first) == 2
    broker.report("w1", [_ok(tasks[1], 1)], started=[])
    failing = Written(fail_on=(1,))
    with pytest.raises(jobs.OutputLost):
        jobs.collect(racing.remote, "later", False, None, failing)
    broker.report("w1", [_ok(tasks[2], 2)], started=[])
    broker.hello(jobs.outbox_of("later"))  # the next run: what was sent comes again
    last = Written()
    assert jobs.collect(racing.remote, "later", False, None, last) == 0
    assert first.values == [0] and last.values == [1, 2]


def test_a_job_the_master_does_not_know() -> None:
    broker, _ = _job_with_leased_tasks(1)
    with pytest.raises(jobs.NoSuchJob, match="no job named other"):
        jobs.collect(RacingBroker(broker, []).remote, "other", True, 5, Written())


def test_a_failed_task_is_counted_and_shown_on_one_line() -> None:
    broker, tasks = _job_with_leased_tasks(2)
    error = bodies.encode_error(ValueError("bad\ninput"))
    broker.report("w1", [_ok(tasks[0], 1), ResultMsg(tasks[1].task_id, Status.ERROR, error)],
                  started=[])
    written = Written()
    jobs.collect(RacingBroker(broker, []).remote, "later", False, None, written)
    (batch,) = written.batches
    failed = [r for r in batch if r.failed]
    assert [r.task_id for r in failed] == [tasks[1].task_id]
    assert failed[0].as_line() == f"{tasks[1].task_id}\terror\tValueError: bad\\ninput"


def test_output_lost_part_way_leaves_only_what_the_reader_took() -> None:
    broker, tasks = _job_with_leased_tasks(5)
    broker.report("w1", [_ok(t, i) for i, t in enumerate(tasks)], started=[])
    racing = RacingBroker(broker, [])
    cut = Written(fail_on=(1,), taken=2)
    with pytest.raises(jobs.OutputLost):
        jobs.collect(racing.remote, "later", False, None, cut)
    broker.hello(jobs.outbox_of("later"))  # the next run
    rest = Written()
    assert jobs.collect(racing.remote, "later", False, None, rest) == 0
    assert len(cut.values) == 2 and sorted(cut.values + rest.values) == [0, 1, 2, 3, 4]


def test_a_peek_leaves_every_result_on_the_master() -> None:
    broker, tasks = _job_with_leased_tasks(3)
    broker.report("w1", [_ok(t, i) for i, t in enumerate(tasks[:2])], started=[])
    racing = RacingBroker(broker, [])
    peeks = [Written(), Written()]
    for peek in peeks:
        assert jobs.collect(racing.remote, "later", False, None, peek, consume=False) == 1
    assert peeks[0].values == peeks[1].values == [0, 1]
    taken = Written()
    assert jobs.collect(racing.remote, "later", False, None, taken) == 1
    assert taken.values == [0, 1]
    assert broker.fetch(jobs.outbox_of("later"), [], max_n=100, wait=0).results == []


class Lines:
    """A stream whose writes fail once ``fail_after`` lines were written."""

    def __init__(self, fail_after: int) -> None:
        self.lines: list[str] = []
        self.fail_after = fail_after

    def write(self, text: str) -> int:
        if len(self.lines) >= self.fail_after:
            raise BrokenPipeError(32, "Broken pipe")
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def _results(n: int) -> list[jobs.JobResult]:
    return [jobs.JobResult(f"t-{i}", Status.OK, i) for i in range(n)]


def test_a_printer_with_a_reader_counts_the_lines_it_took() -> None:
    stream = Lines(fail_after=100)
    reader = iter([True, True, False])  # the reader leaves without the third line
    printer = jobs.Printer(stream, taken=lambda: next(reader))  # type: ignore[arg-type]
    with pytest.raises(jobs.OutputLost, match="the reader left") as lost:
        printer(_results(5))
    assert (lost.value.taken, printer.written, len(stream.lines)) == (2, 2, 3)
    broken = Lines(fail_after=1)
    printer = jobs.Printer(broken, taken=lambda: True)  # type: ignore[arg-type]
    with pytest.raises(jobs.OutputLost, match="Broken pipe") as lost:
        printer(_results(3))
    assert (lost.value.taken, printer.written) == (1, 1)
