"""The journal's schema versions: a new journal is at the latest; a journal of taskq 0.1
(no version) is brought to it without losing a row; a journal of a newer taskq is refused
with one line that says what to do."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from cluster import ROOT

from taskq.master.journal import Journal, schema
from taskq.master.state import BrokerState

FIXTURE = ROOT / "tests" / "fixtures" / "journal-0.1.db"


def _version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return schema.version(db)


def test_a_new_journal_is_at_the_latest_version(tmp_path: Path) -> None:
    Journal(tmp_path / "j.db").close()
    assert _version(tmp_path / "j.db") == schema.LATEST


def test_a_journal_of_the_previous_release_is_migrated_and_loses_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    shutil.copy(FIXTURE, path)
    assert _version(path) == 0
    journal = Journal(path)
    try:
        state = BrokerState(lost_after=5.0, max_lost=3, max_payload=10**6)
        tasks, results = journal.load(state)
    finally:
        journal.close()
    assert (tasks, results) == (3, 0)
    assert list(state.schedules.by_name) == ["hourly"]
    assert _version(path) == schema.LATEST


def test_every_table_has_the_columns_its_statements_name(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "j.db", isolation_level=None) as db:
        schema.migrate(db, "j.db")
        for table, names in schema.COLUMNS.items():
            have = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            assert set(names) <= set(have), table


def test_a_journal_of_a_newer_taskq_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={schema.LATEST + 1}")
    with pytest.raises(schema.JournalTooNew, match="newer than this taskq") as caught:
        Journal(path)
    assert "\n" not in str(caught.value)
