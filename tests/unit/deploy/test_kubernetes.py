"""deploy/kubernetes, checked with no cluster: each way to apply it (the base, the TLS and
KEDA overlays, and both components together) is rendered as ``kubectl apply -k`` would,
every built-in object is valid for Kubernetes in strict mode, the ScaledObject matches the
KEDA schema kept in tests/fixtures, the YAML lints clean, and the pieces agree: ports, one
master on a volume, workers that outlast their grace, keys only from Secrets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cluster import ROOT
from kustomize import render
from taskq_help import option

K8S = ROOT / "deploy" / "kubernetes"
SCHEMA = ROOT / "tests" / "fixtures" / "schemas" / "keda-scaledobject-v1alpha1.json"
SCALED_OBJECT = K8S / "components" / "keda" / "scaledobject.yaml"
# the oldest Kubernetes the manifests claim (docs/operations/deployment.md) and the newest
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
GRACE_DEFAULT = 30.0  # taskq.defaults.GRACE_S
SECRET_FLAGS = ("--authkey-file", "--http-token-file", "--tls-cert", "--tls-key", "--tls-ca")
Obj = dict[str, Any]


def both_components(tmp: Path) -> Path:
    """An overlay of the user's own with TLS and KEDA, as the docs show it."""
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [str(K8S)],
        "components": [str(K8S / "components" / "tls"), str(K8S / "components" / "keda")]}))
    return tmp


@pytest.fixture(params=["base", "tls", "keda", "tls+keda"])
def variant(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[Obj]]:
    name = request.param
    folder = {"base": K8S, "tls": K8S / "overlays" / "tls", "keda": K8S / "overlays" / "keda",
              "tls+keda": both_components(tmp_path)}[name]
    return name, render(folder)


def one(objects: list[Obj], kind: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def pod(obj: Obj) -> Obj:
    return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def argv(obj: Obj) -> list[str]:
    (container,) = pod(obj)["containers"]
    assert "command" not in container  # the image's ENTRYPOINT is ["taskq"]
    return [str(a) for a in container["args"]]


def secret_mounts(obj: Obj) -> dict[str, Obj]:
    """mountPath -> the Secret volume mounted there."""
    volumes = {v["name"]: v for v in pod(obj)["volumes"]}
    (container,) = pod(obj)["containers"]
    return {m["mountPath"]: volumes[m["name"]]["secret"] for m in container["volumeMounts"]
            if "secret" in volumes.get(m["name"], {})}  # (a claim template is no volume)


def secret_of(obj: Obj, path: str) -> tuple[str, str]:
    """(Secret name, key) mounted at a file path."""
    folder, _, file = path.rpartition("/")
    secret = secret_mounts(obj).get(folder)
    assert secret is not None, f"{path}: not on a Secret volume"
    keys = {item["path"]: item["key"] for item in secret.get("items", [])}
    assert file in keys, f"{path}: the volume does not project {file}"
    return secret["secretName"], keys[file]


# ------------------------------------------------------------------ validity


def test_every_built_in_object_is_valid_in_strict_mode(variant: tuple[str, list[Obj]]) -> None:
    name, objects = variant
    kinds = sorted(o["kind"] for o in objects)
    want = ["Deployment", "PodDisruptionBudget", "Service", "StatefulSet"]
    assert kinds == sorted(want + (["ScaledObject"] if "keda" in name else []))
    for obj in objects:
        if obj["kind"] == "ScaledObject":
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    worker = one(render(K8S), "Deployment")
    pod(worker)["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, VERSIONS[-1], strict=True)


def check_jsonschema(instance: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile",
                           str(SCHEMA), str(instance)], capture_output=True, text=True,
                          timeout=60)


def test_the_scaled_object_matches_the_keda_schema(tmp_path: Path) -> None:
    out = check_jsonschema(SCALED_OBJECT)
    assert out.returncode == 0, out.stdout + out.stderr
    bad = yaml.safe_load(SCALED_OBJECT.read_text())
    bad["spec"]["minReplicas"] = bad["spec"].pop("minReplicaCount")  # an HPA's spelling
    bad["spec"]["triggers"][0]["metadata"]["threshold"] = 1  # metadata values are strings
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = check_jsonschema(tmp_path / "bad.json")
    assert out.returncode == 1 and "minReplicas" in out.stdout and "threshold" in out.stdout


def test_the_yaml_lints_clean() -> None:
    out = subprocess.run([sys.executable, "-m", "yamllint", "--strict", "--config-file",
                          str(ROOT / ".yamllint.yaml"), str(ROOT / "deploy")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# ------------------------------------------------------------------ consistency


def test_one_master_with_its_journal_on_a_claim(variant: tuple[str, list[Obj]]) -> None:
    master = one(variant[1], "StatefulSet")
    assert master["spec"]["replicas"] == 1
    state = option(argv(master), "--state")
    assert state is not None
    (claim,) = master["spec"]["volumeClaimTemplates"]
    (container,) = pod(master)["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(state).parent) == mounts[claim["metadata"]["name"]]
    assert claim["metadata"]["name"] not in {v["name"] for v in pod(master)["volumes"]}


def test_ports_agree(variant: tuple[str, list[Obj]]) -> None:
    objects = variant[1]
    master, service = one(objects, "StatefulSet"), one(objects, "Service")
    args = argv(master)
    http_host, _, http_port = (option(args, "--http") or "").rpartition(":")
    assert option(args, "--host") == "0.0.0.0" and http_host == "0.0.0.0"
    (container,) = pod(master)["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named == {"task": int(option(args, "--port") or 0), "http": int(http_port)}
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert {n: (p["port"], named[p["targetPort"]]) for n, p in ports.items()} == {
        "task": (named["task"], named["task"]), "http": (named["http"], named["http"])}
    assert service["spec"]["selector"] == master["spec"]["selector"]["matchLabels"]
    assert master["spec"]["serviceName"] == service["metadata"]["name"]
    worker = one(objects, "Deployment")
    assert option(argv(worker), "--connect") == f"{service['metadata']['name']}:{named['task']}"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    notes = master["spec"]["template"]["metadata"]["annotations"]
    assert int(notes["prometheus.io/port"]) == named["http"]
    assert "--metrics-public" in args  # the scraper has no dashboard token


def test_workers_outlast_their_grace(variant: tuple[str, list[Obj]]) -> None:
    worker = one(variant[1], "Deployment")
    grace = float(option(argv(worker), "--grace") or GRACE_DEFAULT)
    assert pod(worker)["terminationGracePeriodSeconds"] > grace


def test_keys_come_only_from_secrets(variant: tuple[str, list[Obj]]) -> None:
    objects = variant[1]
    text = yaml.safe_dump_all(objects)
    assert "ConfigMap" not in text and "configMap" not in text
    assert "TASKQ_AUTHKEY" not in text and "TASKQ_HTTP_TOKEN" not in text
    master, worker = one(objects, "StatefulSet"), one(objects, "Deployment")
    assert secret_of(master, option(argv(master), "--authkey-file") or "") == (
        "taskq", "authkey")
    assert secret_of(worker, option(argv(worker), "--authkey-file") or "") == (
        "taskq", "authkey")
    assert secret_of(master, option(argv(master), "--http-token-file") or "")[1] == "http-token"
    for obj in (master, worker):
        for flag in SECRET_FLAGS:
            path = option(argv(obj), flag)
            if path is not None:
                secret_of(obj, path)  # a file on a Secret volume
    projected = {item["key"] for secret in secret_mounts(worker).values()
                 for item in secret["items"]}
    assert projected <= {"authkey", "ca.crt"}  # never the web token nor the master's key


def test_tls_overlay_takes_the_certificates_from_a_secret(
        variant: tuple[str, list[Obj]]) -> None:
    name, objects = variant
    master, worker = one(objects, "StatefulSet"), one(objects, "Deployment")
    flags = {f: option(argv(master), f) for f in ("--tls-cert", "--tls-key")}
    ca = option(argv(worker), "--tls-ca")
    if "tls" not in name:
        assert flags == {"--tls-cert": None, "--tls-key": None} and ca is None
        return
    assert secret_of(master, flags["--tls-cert"] or "") == ("taskq-tls", "tls.crt")
    assert secret_of(master, flags["--tls-key"] or "") == ("taskq-tls", "tls.key")
    assert secret_of(worker, ca or "") == ("taskq-tls", "ca.crt")


def test_every_container_requests_resources_and_workers_fill_theirs(
        variant: tuple[str, list[Obj]]) -> None:
    objects = variant[1]
    for obj in (one(objects, "StatefulSet"), one(objects, "Deployment")):
        (container,) = pod(obj)["containers"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
    worker = one(objects, "Deployment")
    (container,) = pod(worker)["containers"]
    assert int(option(argv(worker), "--procs") or 0) == int(
        container["resources"]["requests"]["cpu"])


def test_the_disruption_budget_covers_the_workers_only() -> None:
    objects = render(K8S)
    budget = one(objects, "PodDisruptionBudget")["spec"]
    selector = budget["selector"]["matchLabels"]
    worker, master = one(objects, "Deployment"), one(objects, "StatefulSet")
    assert selector.items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    assert not selector.items() <= master["spec"]["template"]["metadata"]["labels"].items()
    assert re.fullmatch(r"\d+%?", str(budget["maxUnavailable"]))


def test_keda_scales_the_worker_deployment_on_the_desired_workers() -> None:
    objects = render(K8S / "overlays" / "keda")
    scaled, worker = one(objects, "ScaledObject"), one(objects, "Deployment")
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", worker["metadata"]["name"])
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["cooldownPeriod"] > 0 and spec["pollingInterval"] > 0
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert "taskq_desired_workers" in trigger["metadata"]["query"]
    assert trigger["metadata"]["threshold"] == "1"  # replicas = desired workers
    queues = option(argv(worker), "--queues") or "default"
    assert f'queue="{queues}"' in trigger["metadata"]["query"]
