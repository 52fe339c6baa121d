"""Which lines the reader of a pipe took (``taskq.cli.handover``), on real pipes."""

from __future__ import annotations

import os
from pathlib import Path

from taskq.cli.handover import pipe_reader


def test_a_line_counts_as_taken_once_read_and_not_when_the_reader_left() -> None:
    r, w = os.pipe()
    with os.fdopen(w, "w") as out:
        taken = pipe_reader(out)
        assert taken is not None
        out.write("one\n")
        out.flush()
        assert os.read(r, 100) == b"one\n"
        assert taken()
        out.write("two\n")
        out.flush()
        os.close(r)  # gone without reading it
        assert not taken()


def test_a_line_read_just_before_the_reader_left_was_taken() -> None:
    r, w = os.pipe()
    with os.fdopen(w, "w") as out:
        taken = pipe_reader(out)
        assert taken is not None
        out.write("last\n")
        out.flush()
        assert os.read(r, 100) == b"last\n"
        os.close(r)
        assert taken()


def test_a_file_is_no_pipe(tmp_path: Path) -> None:
    with (tmp_path / "out.txt").open("w") as out:
        assert pipe_reader(out) is None
