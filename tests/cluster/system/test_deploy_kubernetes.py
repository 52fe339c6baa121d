"""deploy/kubernetes against real taskq processes: every container's command line uses only
flags its ``--help`` lists, and the master and worker command lines of the manifests run
(addresses and mounted paths moved to the test's loopback and folder): the probes' path
answers without the token, a task runs, and every metric the ScaledObject's query names is
in that master's /metrics with the labels it selects."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import tasks_mod
import yaml
from cluster import ROOT, Cluster, wait_ready
from kustomize import render
from prometheus_client.parser import text_string_to_metric_families
from taskq_help import unknown_flags
from web_helpers import DASHBOARD, get

pytestmark = pytest.mark.timeout(90)

K8S = ROOT / "deploy" / "kubernetes"
VARIANTS = [K8S, K8S / "overlays" / "tls", K8S / "overlays" / "keda"]
# the query's selectors: a metric name, then {label="value", ...}
SELECTOR = re.compile(r"(?P<name>taskq_[a-z_]+)\{(?P<labels>[^}]*)\}")


def container_args(kind: str, folder: Path = K8S) -> list[str]:
    (obj,) = [o for o in render(folder) if o["kind"] == kind]
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]


@pytest.mark.parametrize("folder", VARIANTS, ids=lambda p: p.name)
def test_container_command_lines_use_real_flags(folder: Path) -> None:
    for kind in ("StatefulSet", "Deployment"):
        args = container_args(kind, folder)
        assert args[0] in ("master", "worker")
        assert unknown_flags(args) == [], f"{folder.name} {kind}: {args}"


def here(args: list[str], moves: dict[str, str]) -> list[str]:
    """The manifest's command line with the values of ``moves``' flags replaced."""
    out = list(args)
    for i, word in enumerate(out[:-1]):
        if word in moves:
            out[i + 1] = moves[word]
    return out


def start_manifest_master(cluster: Cluster, tmp: Path) -> str:
    """The StatefulSet's master, on loopback and the test's folder; returns its page URL."""
    (tmp / "authkey").write_text(cluster.authkey + "\n")
    (tmp / "http-token").write_text("token-of-the-test\n")
    args = here(container_args("StatefulSet"), {
        "--host": "127.0.0.1", "--port": "0", "--http": "127.0.0.1:0",
        "--state": str(tmp / "state" / "journal.db"), "--authkey-file": str(tmp / "authkey"),
        "--http-token-file": str(tmp / "http-token")})
    proc = cluster.spawn(args, stdout=subprocess.PIPE)
    cluster.address = wait_ready(proc)
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline()  # bounded by the test's timeout
    assert line.startswith(DASHBOARD), line
    return line[len(DASHBOARD):].strip()


def test_the_manifests_master_and_worker_run_and_serve_the_scalers_metric(
        cluster: Cluster, tmp_path: Path) -> None:
    url = start_manifest_master(cluster, tmp_path)
    assert get(url + "healthz") == (200, b"ok\n")  # the probes carry no token
    assert get(url + "api/status")[0] == 401
    worker = here(container_args("Deployment"), {
        "--connect": cluster.address, "--authkey-file": str(tmp_path / "authkey")})
    cluster.spawn(worker)
    with cluster.client() as client:
        assert client.submit(tasks_mod.add, 2, 3).result(60) == 5

    status, body = get(url + "metrics")  # no token: --metrics-public, as Prometheus scrapes
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items())))
               for family in text_string_to_metric_families(body.decode())
               for s in family.samples}
    scaled = yaml.safe_load((K8S / "components" / "keda" / "scaledobject.yaml").read_text())
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    wanted = list(SELECTOR.finditer(query))
    assert wanted, query
    for m in wanted:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        assert any(name == m["name"] and labels.items() <= dict(have).items()
                   for name, have in samples), f"{m[0]} is not in the master's /metrics"
