"""deploy/slurm/taskq.sbatch: it passes shellcheck, its walltime signal leaves the workers
their grace, and it runs here with ``srun`` and ``scontrol`` replaced by stubs
(tests/fixtures/slurm): a real master and one worker per "node", a task through them, then
the walltime signal drains the workers (a running task still ends OK), the script stops the
master and exits 0."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tasks_mod
from cluster import ROOT, TEST_PATH, Cluster, group_pids, wait_for

pytestmark = pytest.mark.timeout(120)

SCRIPT = ROOT / "deploy" / "slurm" / "taskq.sbatch"
STUBS = ROOT / "tests" / "fixtures" / "slurm"
BIN = Path(sys.executable).parent  # taskq and shellcheck, installed beside this Python
NODES = 2
GRACE = 10  # the test's TASKQ_GRACE: a running task of 1 s finishes well within it


def sbatch_options() -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?$", SCRIPT.read_text(), re.M))


def default_grace() -> float:
    found = re.search(r'^: "\$\{TASKQ_GRACE:=(\d+)\}"', SCRIPT.read_text(), re.M)
    assert found, "no TASKQ_GRACE default"
    return float(found[1])


def test_the_script_and_the_stubs_pass_shellcheck() -> None:
    out = subprocess.run([str(BIN / "shellcheck"), "--severity=style", str(SCRIPT),
                          str(STUBS / "srun"), str(STUBS / "scontrol")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_walltime_signal_reaches_the_workers_with_time_to_drain() -> None:
    options = sbatch_options()
    signal_spec = options["signal"]
    kind, _, lead = signal_spec.partition("@")
    assert kind == "TERM"  # no "B:": the job steps (the workers) get it, not the script
    assert float(lead) >= default_grace() + 60  # the grace, then a minute for the master
    assert options["ntasks-per-node"] == "1" and "exclusive" in options


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def job(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """The script started as Slurm would start it on the first node, stubs on PATH."""
    key = tmp_path / "authkey"
    key.write_text(Cluster(tmp_path).authkey + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKQ_", "SLURM_"))}
    env.update(PATH=f"{STUBS}{os.pathsep}{BIN}{os.pathsep}{env.get('PATH', '')}",
               HOME=str(tmp_path), PYTHONPATH=TEST_PATH, SLURM_JOB_ID="4242",
               SLURM_JOB_NODELIST="node[1-2]", SLURM_JOB_NUM_NODES=str(NODES),
               SLURM_SUBMIT_DIR=str(tmp_path), SRUN_STUB_PIDS=str(tmp_path / "srun.pids"),
               TASKQ_PORT=str(free_port()), TASKQ_GRACE=str(GRACE),
               TASKQ_AUTHKEY_FILE=str(key))
    with (tmp_path / "job.log").open("wb") as log:
        proc = subprocess.Popen(["bash", str(SCRIPT)], env=env, cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        wait_for(lambda: not group_pids(proc.pid), 10, "the job's processes to exit")


def test_the_script_runs_a_cluster_and_drains_it_at_the_walltime_signal(
        job: tuple[subprocess.Popen[bytes], dict[str, str]], tmp_path: Path) -> None:
    proc, env = job
    address_file = tmp_path / "taskq-4242.address"
    wait_for(lambda: address_file.exists() or proc.poll() is not None, 60, "the address file")
    assert proc.poll() is None, (tmp_path / "job.log").read_text()
    cluster = Cluster(tmp_path, authkey=Path(env["TASKQ_AUTHKEY_FILE"]).read_text().strip())
    cluster.address = address_file.read_text().strip()
    assert cluster.address == f"127.0.0.1:{env['TASKQ_PORT']}"
    cluster.wait_workers(NODES)
    assert {w["procs"] for w in cluster.status()["workers"]} == {1}  # SLURM_CPUS_ON_NODE
    with cluster.client() as client:
        assert client.submit(tasks_mod.add, 40, 2).result(60) == 42
        marks, release = tmp_path / "marks", tmp_path / "release"
        marks.mkdir()
        running = client.submit(tasks_mod.mark_then_hold, str(marks), "drained", str(release))
        wait_for(lambda: tasks_mod.runs_of(str(marks), "drained") == 1, 60, "the task to start")
        for pid in map(int, (tmp_path / "srun.pids").read_text().split()):
            os.kill(pid, signal.SIGTERM)  # what slurmd does at --signal=TERM@...
        release.touch()  # the task ends within the workers' grace
        assert running.result(60) == "drained"  # drained: it ran to its end
        assert tasks_mod.runs_of(str(marks), "drained") == 1
    assert proc.wait(60) == 0, (tmp_path / "job.log").read_text()
    log = (tmp_path / "job.log").read_text()
    assert "taskq workers stopped (status 0); stopping the master" in log
    assert "master_stopped" in log  # it flushed its journal and exited
    assert not address_file.exists()
    assert (tmp_path / "taskq-state" / "journal.db").exists()
