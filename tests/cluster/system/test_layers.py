"""The house keeps its shape: no import cycle in taskq, ``import taskq`` loads only the
leaves, and a pool process (what runs a task) loads no master, network or CLI code. The
layers themselves are import-linter contracts in pyproject.toml, checked by ``lint-imports``."""

from __future__ import annotations

import subprocess
import sys

import grimp
import tasks_mod
from cluster import ROOT, Cluster

ROLES = ("taskq.master", "taskq.net", "taskq.cli", "taskq.client")


def test_no_import_cycle_anywhere_in_taskq() -> None:
    graph = grimp.build_graph("taskq")
    cycles = sorted({tuple(sorted((module, imported)))
                     for module in graph.modules
                     for imported in graph.find_modules_directly_imported_by(module)
                     if graph.chain_exists(importer=imported, imported=module)})
    assert cycles == []


def _loaded_after(statement: str) -> list[str]:
    code = (f"import sys; {statement}; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('taskq', 'ssl')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, cwd=ROOT)
    return out.stdout.split()


def test_import_taskq_loads_only_the_leaves_until_a_name_is_used() -> None:
    assert _loaded_after("import taskq") == ["taskq", "taskq.errors"]
    loaded = _loaded_after("import taskq; taskq.Client")
    assert "taskq.client.client" in loaded and "taskq.master.broker" not in loaded


def test_what_runs_a_task_loads_no_master_net_or_cli_module() -> None:
    loaded = _loaded_after("import taskq.worker.pools.child, taskq.worker.execute")
    assert "taskq.worker.execute" in loaded
    assert [m for m in loaded if m.startswith(ROLES) or m == "ssl"] == []


def test_a_task_on_a_real_worker_runs_in_a_process_without_them(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_worker()
    with cluster.client() as client:
        loaded = client.submit(tasks_mod.loaded_modules).result(60)
    assert "taskq.worker.pools.child" in loaded
    assert [m for m in loaded if m.startswith((*ROLES, "typer")) or m == "ssl"] == []
