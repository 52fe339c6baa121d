"""The systems under test behind one small adapter interface, and how to start each.

    start_system("taskq-memory", workers=2, workdir) ──► TaskqSystem
        master (--in-memory or --state) + N workers (`taskq worker --procs 1`) + taskq.Client
    start_system("processpool" | "seed" | "dask", ...) ──► the peers in bench.peers

Every adapter offers ``submit(fn, *args)`` (a future with ``result(timeout)``),
``map(fn, items, chunksize)`` (results in order) and ``shutdown()``; workloads use nothing
else, except the pending-memory workload, which uses ``pending_memory`` where it exists.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.base import CALL_TIMEOUT_S, LIMIT_S, START_TIMEOUT_S, FutureLike, System
from bench.procs import BenchError, Helper, Helpers, child_env, read_line_with, vm_rss, wait_for

READY = "taskq master listening on "




class TaskqSystem:
    """A real taskq cluster on loopback: one master, N one-process workers, one Client."""

    def __init__(self, name: str, durable: bool, workers: int, workdir: Path,
                 tls: bool = False, threads: bool = False) -> None:
        self.name = name
        self.procs = workers
        self.durable = durable
        self.helpers = Helpers(workdir)
        self.authkey = secrets.token_hex(16)
        self.env = child_env({"TASKQ_AUTHKEY": self.authkey,
                              "TASKQ_STATE_DIR": str(workdir / "state")})
        self.tls_args: list[str] = []
        self.tls_ca: Path | None = None
        if tls:  # a CA and a master certificate made here; workers and the CLI trust the CA
            from bench.certs import CA

            ca = CA(workdir / "pki")
            server = ca.issue("master")
            self.tls_args = ["--tls-cert", str(server.cert), "--tls-key", str(server.key)]
            self.tls_ca = ca.cert
            self.env["TASKQ_TLS_CA"] = str(ca.cert)
        self.client: Any = None
        try:
            self.master = self._start_master(workdir)
            self.address = read_line_with(self.master, READY, START_TIMEOUT_S)
            # one task at a time per worker: one pool process, or one pool thread
            pool = ["--pool", "threads", "--concurrency", "1"] if threads else ["--procs", "1"]
            for i in range(workers):
                self.helpers.spawn(["-m", "taskq", "worker", "--connect", self.address,
                                    *pool, "--log-level", "warning"], self.env, f"worker{i}")
            if workers:
                self.wait_workers(workers)
            self.client = self._connect()
        except BaseException:
            self.helpers.kill()
            raise

    def _start_master(self, workdir: Path) -> Helper:
        mode = ["--state", str(workdir / "journal.db")] if self.durable else ["--in-memory"]
        # on a master TASKQ_TLS_CA would ask for client certificates (mutual TLS)
        env = {k: v for k, v in self.env.items() if k != "TASKQ_TLS_CA"}
        return self.helpers.spawn(["-m", "taskq", "master", "--host", "127.0.0.1", "--port",
                                   "0", "--log-level", "warning", *mode, *self.tls_args],
                                  env, "master", stdout=subprocess.PIPE)

    def _connect(self) -> Any:
        import taskq

        tls = taskq.TLS(ca=self.tls_ca) if self.tls_ca else None
        return taskq.Client(self.address, authkey=self.authkey.encode(), tls=tls)

    def status(self) -> dict[str, Any]:
        """``taskq status --json`` against this cluster's master."""
        out = subprocess.run([sys.executable, "-m", "taskq", "status", "--json", "--address",
                              self.address], env=self.env, capture_output=True, text=True,
                             timeout=CALL_TIMEOUT_S, check=False)
        if out.returncode != 0:
            raise BenchError(f"taskq status failed: {out.stderr.strip()[-500:]}")
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def wait_workers(self, n: int) -> None:
        def ready() -> bool:
            dead = [h for h in self.helpers.items if h.popen.poll() is not None]
            if dead:
                raise BenchError(f"{dead[0].name} exited with code {dead[0].popen.returncode}: "
                                 f"{dead[0].stderr_tail()}")
            return len(self.status()["workers"]) >= n

        wait_for(ready, START_TIMEOUT_S, f"{n} taskq workers to connect", every=0.5)

    def submit(self, fn: Callable[..., Any], *args: Any) -> FutureLike:
        return self.client.submit(fn, *args)  # type: ignore[no-any-return]

    def set_rate(self, queue: str, per_s: float) -> None:
        """``taskq queue set QUEUE --rate`` (0: ``taskq queue clear``)."""
        args = ["set", queue, "--rate", f"{per_s:g}/s"] if per_s else ["clear", queue]
        out = subprocess.run([sys.executable, "-m", "taskq", "queue", *args, "--address",
                              self.address], env=self.env, capture_output=True, text=True,
                             timeout=CALL_TIMEOUT_S, check=False)
        if out.returncode != 0:
            raise BenchError(f"taskq queue {args[0]} failed: {out.stderr.strip()[-500:]}")

    def map(self, fn: Callable[..., Any], items: Iterable[Any], chunksize: int) -> Iterator[Any]:
        return self.client.map(fn, items, chunksize=chunksize,  # type: ignore[no-any-return]
                               timeout=LIMIT_S)

    def pending_memory(self, fn: Callable[..., Any], n: int) -> dict[str, float]:
        """Master RSS growth while it holds ``n`` pending tasks (start with no workers)."""
        before = vm_rss(self.master.pid)
        start = time.perf_counter()
        for _ in range(n):
            self.client.submit(fn)
        wait_for(lambda: sum(self.status()["pending"].values()) >= n, 300,
                 f"{n} pending tasks on the master", every=0.5)
        elapsed = time.perf_counter() - start
        after = vm_rss(self.master.pid)
        return {"bytes_per_task": (after - before) / n, "rss_before_mib": before / 2**20,
                "rss_after_mib": after / 2**20, "submit_per_s": n / elapsed}

    def shutdown(self) -> None:
        try:
            if self.client is not None:
                self.client.shutdown(wait=False, cancel_futures=False)
        finally:
            self.helpers.stop()


def start_system(name: str, workers: int, workdir: Path) -> System:
    """Start ``name`` with ``workers`` single-process workers (0: a queue with no workers)."""
    from bench import peers

    workdir.mkdir(parents=True, exist_ok=True)
    if name == "taskq-durable":
        return TaskqSystem(name, True, workers, workdir)
    if name == "taskq-memory":
        return TaskqSystem(name, False, workers, workdir)
    if name == "taskq-tls":
        return TaskqSystem(name, False, workers, workdir, tls=True)
    if name == "taskq-threads":
        return TaskqSystem(name, True, workers, workdir, threads=True)
    if name == "processpool":
        return peers.ProcessPoolSystem(workers)
    if name == "seed":
        return peers.SeedSystem(workers, workdir)
    if name == "dask":
        return peers.DaskSystem(workers)
    raise ValueError(f"unknown system {name!r}")


SYSTEM_NAMES = ("taskq-durable", "taskq-memory", "taskq-tls", "taskq-threads", "processpool",
                "seed", "dask")


def available(name: str) -> str | None:
    """Why ``name`` cannot run here (None when it can)."""
    if name == "taskq-tls":
        try:
            import cryptography  # noqa: F401
        except ImportError:
            return "needs cryptography to make certificates (pip install 'taskq[bench]')"
    if name == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            return "not installed (pip install 'taskq[bench]')"
    return None
