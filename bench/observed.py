"""Does watching the master slow it? The throughput workload on a durable taskq cluster,
with and without the dashboard open and /metrics scraped, side by side.

    python -m bench.observed [--rounds 3] [--tasks 5000]

One cluster (`taskq master --state ... --http 127.0.0.1:PORT`, two one-process workers)
runs the workload in rounds, alternately plain and observed; observed means, during the
run, what an open dashboard asks for (GET /api/status every second, as the page polls)
and a Prometheus scrape of /metrics every second. The best of each kind is kept and the
ratio observed/plain reported (target >= 0.95); figures go to bench/observed.json.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import workloads
from bench.systems import TaskqSystem

TARGET = 0.95


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ObservedSystem(TaskqSystem):
    """A durable taskq cluster whose master serves its web page on a known port."""

    port = 0

    def _start_master(self, workdir: Path) -> Any:
        ObservedSystem.port = free_port()
        return self.helpers.spawn(
            ["-m", "taskq", "master", "--host", "127.0.0.1", "--port", "0", "--log-level",
             "warning", "--state", str(workdir / "journal.db"), "--http",
             f"127.0.0.1:{ObservedSystem.port}"], self.env, "master",
            stdout=subprocess.PIPE)


class Observer:
    """Polls /api/status and /metrics once a second each, in a thread, until stopped."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while True:
            for path in ("api/status", "metrics"):
                with urllib.request.urlopen(self.base + path, timeout=10) as reply:
                    reply.read()
                self.requests += 1
            if self._stop.wait(1.0):
                return


def run(rounds: int, tasks: int) -> dict[str, Any]:
    sizes = workloads.Sizes(throughput_tasks=tasks)
    with tempfile.TemporaryDirectory(prefix="taskq-observed-") as tmp:
        system = ObservedSystem("taskq-durable", True, 2, Path(tmp))
        base = f"http://127.0.0.1:{ObservedSystem.port}/"
        try:
            workloads.throughput(system, workloads.Sizes(throughput_tasks=200))  # warm-up
            plain: list[float] = []
            observed: list[float] = []
            scrapes = 0
            for _ in range(rounds):
                plain.append(workloads.throughput(system, sizes)["tasks_per_s"])
                with Observer(base) as obs:
                    observed.append(workloads.throughput(system, sizes)["tasks_per_s"])
                scrapes += obs.requests
        finally:
            system.shutdown()
    ratio = max(observed) / max(plain)
    return {"tasks": tasks, "rounds": rounds, "plain_tasks_per_s": plain,
            "observed_tasks_per_s": observed, "requests_while_observed": scrapes,
            "ratio": ratio, "target": TARGET, "pass": ratio >= TARGET, "when": time.time()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--json", type=Path, default=Path("bench/observed.json"))
    args = parser.parse_args()
    out = run(args.rounds, args.tasks)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"throughput, best of {args.rounds}: plain {max(out['plain_tasks_per_s']):.0f} "
          f"tasks/s, observed {max(out['observed_tasks_per_s']):.0f} tasks/s "
          f"({out['requests_while_observed']} requests): ratio {out['ratio']:.3f} "
          f"(target >= {TARGET}) {'PASS' if out['pass'] else 'FAIL'}")


if __name__ == "__main__":
    main()
