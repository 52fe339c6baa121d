"""``python -m bench restore``: how fast a durable master comes back on a big journal.

    python -m bench restore [--tasks 1000000] [--json bench/restore.json]

It writes a journal of N pending tasks with the master's own code (``BrokerState.submit``
in batches, each batch's changes written by ``Journal.write``: the rows a master writes for
tasks submitted and never run), then starts a real ``taskq master --state`` on it, and
measures, against a master started on an empty journal:

    seconds from its start until it listens (its ready line), and until ``taskq status``
    answers with all N pending; its resident memory then, per pending task

Each task is a no-op call of the smallest size (a few bytes of function and arguments), so
the figure is the master's own cost per task, not the user's payload.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import scale_api
from bench.procs import Helpers, child_env, install_signal_exit, read_line_with, vm_rss
from taskq.master.journal import Journal
from taskq.master.state import BrokerState
from taskq.protocol.messages import TaskMsg, TaskOptions

READY = "taskq master listening on "
BATCH = 20_000  # tasks per journal transaction while the journal is built
OUTBOX = "job:restore"
DEFAULT_JSON = Path(__file__).with_name("restore.json")


def build_journal(path: Path, tasks: int) -> float:
    """A journal of ``tasks`` pending tasks; returns the seconds it took to write."""
    started = time.perf_counter()
    journal = Journal(path)
    state = BrokerState(lost_after=5.0, max_lost=3, max_payload=1 << 20)
    try:
        options = TaskOptions()
        for first in range(0, tasks, BATCH):
            batch = [TaskMsg(f"restore-{i}", OUTBOX, b"f", b"a", options)
                     for i in range(first, min(tasks, first + BATCH))]
            state.submit(batch, now=0.0)
            journal.write(state.drain_changes())
            # only the journal needs them: this process stays small (the sequence goes on)
            state.tasks.clear()
            state.queues = type(state.queues)()
    finally:
        journal.close()
    return time.perf_counter() - started


def start(path: Path, workdir: Path, tasks: int) -> dict[str, Any]:
    """Start a master on ``path``; time it until it listens and serves all ``tasks``."""
    workdir.mkdir(parents=True, exist_ok=True)
    helpers = Helpers(workdir)
    authkey = secrets.token_hex(16)
    try:
        started = time.perf_counter()
        master = helpers.spawn(
            ["-m", "taskq", "master", "--host", "127.0.0.1", "--port", "0", "--http", "off",
             "--log-level", "warning", "--state", str(path)],
            child_env({"TASKQ_AUTHKEY": authkey}), "master", stdout=subprocess.PIPE)
        address = read_line_with(master, READY, 600)
        listening = time.perf_counter() - started
        host, port = address.rsplit(":", 1)
        link = scale_api.link((host, int(port)), authkey.encode(), 60.0)
        link.open(60.0)
        try:
            status = scale_api.status_of(link)  # (held for their holders at first)
            pending = sum(status.pending.values()) + status.waiting
        finally:
            link.close()
        serving = time.perf_counter() - started
        return {"listening_s": round(listening, 2), "serving_s": round(serving, 2),
                "pending": pending, "rss_bytes": vm_rss(master.pid)}
    finally:
        helpers.kill()


def run(tasks: int, say: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="taskq-restore-") as tmp:
        root = Path(tmp)
        empty = root / "empty.db"
        build_journal(empty, 0)
        base = start(empty, root / "empty", 0)
        say(f"empty journal: listening in {base['listening_s']} s, "
            f"{base['rss_bytes'] / 2**20:.1f} MiB")
        big = root / "big.db"
        wrote = build_journal(big, tasks)
        size = big.stat().st_size
        say(f"journal of {tasks:,} pending tasks written in {wrote:.1f} s ({size / 2**20:.0f} MiB)")
        full = start(big, root / "big", tasks)
    per_task = (full["rss_bytes"] - base["rss_bytes"]) / max(tasks, 1)
    return {"tasks": tasks, "journal_bytes": size, "empty": base, "restored": full,
            "bytes_per_pending_task": round(per_task)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench restore",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=1_000_000,
                        help="pending tasks in the journal (default: 1000000)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help="where to write the figures (default: bench/restore.json)")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    install_signal_exit()
    console = Console()
    out = run(args.tasks, console.print)
    full = out["restored"]
    console.print(f"restored {full['pending']:,} pending tasks: listening after "
                  f"{full['listening_s']} s, serving them all after {full['serving_s']} s; "
                  f"{out['bytes_per_pending_task']:,} bytes of master memory per pending task")
    ok = full["pending"] == args.tasks
    if not ok:
        console.print(f"[red]the master listed {full['pending']:,} pending, not {args.tasks:,}")
    out["command"] = "python -m bench restore " + " ".join(argv)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"figures written to {args.json}")
    return 0 if ok else 1
