"""The journal gives space back: once large results are fetched, its files (the database
and its WAL) return to about the size of what is still live, without a restart."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
import tasks_mod
from cluster import Cluster, wait_for

from taskq.master.journal import Journal
from taskq.master.state import BrokerState, Changes, TaskRecord
from taskq.protocol.messages import ResultMsg, Status, TaskMsg

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
SMALL = 2 * MiB  # what a journal holding a few small rows may take, WAL included


def journal_bytes(path: Path) -> int:
    """The database file plus its WAL, as they are on disk now."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _sizes(path: Path) -> str:
    wal = Path(f"{path}-wal")
    return f"db {path.stat().st_size} + WAL {wal.stat().st_size if wal.exists() else 0} bytes"


def test_a_fetched_large_result_leaves_the_journal_small(cluster: Cluster,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    cluster.start_master("--state", str(path))
    cluster.start_worker()
    with cluster.client() as client:
        assert len(client.submit(tasks_mod.blob, 40 * MiB).result(60)) == 40 * MiB
        peak = wait_for(lambda: journal_bytes(path) >= 40 * MiB and journal_bytes(path), 30,
                        "the result to be journaled")
    acked = time.monotonic()  # the client acknowledged the result as it closed
    wait_for(lambda: journal_bytes(path) < SMALL, 30,
             f"the journal to shrink below {SMALL} bytes (it is {journal_bytes(path)})")
    took = time.monotonic() - acked
    print(f"\njournal: {peak} bytes with the result; {_sizes(path)} {took:.2f} s after "
          "it was fetched")


def _result(task_id: str, size: int) -> tuple[str, ResultMsg]:
    return "box", ResultMsg(task_id, Status.OK, b"r" * size, "", "host:1", 0.1)


def test_the_writer_frees_acked_results_and_keeps_live_rows(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    try:
        live = TaskRecord(msg=TaskMsg("live", "box", b"fn", b"a" * 1000), seq=1)
        journal.wait(journal.append(Changes(added=[live], finished=[
            _result("big", 12 * MiB), _result("kept", 100)])))
        assert journal_bytes(path) > 12 * MiB
        journal.wait(journal.append(Changes(acked=["big"])))
        wait_for(lambda: journal_bytes(path) < SMALL, 30,
                 f"the journal to shrink below {SMALL} bytes (it is {journal_bytes(path)})")
    finally:
        journal.close()
    state = BrokerState(lost_after=5, max_lost=3, max_payload=MiB)
    reopened = Journal(path)
    try:
        assert reopened.load(state) == (1, 1)
    finally:
        reopened.close()
    assert list(state.tasks) == ["live"]
    assert state.outboxes["box"].results["kept"].body == b"r" * 100


def test_a_journal_made_without_auto_vacuum_is_converted_on_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    journal.write(Changes(finished=[_result("old", 3 * MiB)]))
    journal.close()
    with closing(sqlite3.connect(path)) as db:  # as journals were made before
        db.execute("PRAGMA auto_vacuum=NONE")
        db.execute("VACUUM")
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        db.execute("DELETE FROM results")
        db.commit()
        assert db.execute("PRAGMA freelist_count").fetchone()[0] > 0
    journal = Journal(path)
    journal.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert journal_bytes(path) < SMALL


def test_a_new_journal_uses_incremental_vacuum(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.close()
    with closing(sqlite3.connect(tmp_path / "journal.db")) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
