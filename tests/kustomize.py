"""Render a kustomization the way ``kubectl apply -k`` would, for the subset taskq's
manifests use, so they can be validated with no cluster and no kubectl.

    kustomization.yaml ── resources (files, or folders with their own kustomization) ──┐
                       ── components (kind: Component, applied in order)  ─────────────┤
                       ── patches (JSON 6902, with a target)  ───────────────────────── ┤
                       ── images (newName / newTag)  ──────────────────────────────────► objects

Anything else in a kustomization (generators, strategic-merge patches, name prefixes,
labels) is refused, so a manifest that starts using it fails here until this learns it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "components", "patches", "images"}
Obj = dict[str, Any]


def render(folder: Path) -> list[Obj]:
    """Every object the kustomization in ``folder`` makes, patched and with its images."""
    spec = _kustomization(folder)
    assert spec["kind"] == "Kustomization", f"{folder}: not a Kustomization"
    return _build(folder, spec)


def _kustomization(folder: Path) -> Obj:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    assert not unknown, f"{folder}: fields this renderer does not know: {sorted(unknown)}"
    return spec


def _build(folder: Path, spec: Obj) -> list[Obj]:
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for entry in spec.get("components", []):
        path = (folder / entry).resolve()
        component = _kustomization(path)
        assert component["kind"] == "Component", f"{path}: not a Component"
        assert component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
        objects = _apply(path, component, objects + _build(path, {
            "resources": component.get("resources", [])}))
    return _apply(folder, {**spec, "resources": []}, objects)


def _apply(folder: Path, spec: Obj, objects: list[Obj]) -> list[Obj]:
    for patch in spec.get("patches", []):
        ops = yaml.safe_load((folder / patch["path"]).read_text())
        targets = [o for o in objects if _matches(o, patch["target"])]
        assert len(targets) == 1, f"{patch}: {len(targets)} targets"
        index = objects.index(targets[0])
        objects[index] = json_patch(targets[0], ops)
    for image in spec.get("images", []):
        for container in _containers(objects):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return objects


def _matches(obj: Obj, target: Obj) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": obj["kind"],
              "name": obj["metadata"]["name"]}
    return all(wanted[k] == v for k, v in target.items())


def _containers(objects: list[Obj]) -> list[Obj]:
    out = []
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        out += pod.get("containers", []) + pod.get("initContainers", [])
    return out


def json_patch(obj: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 add, replace and remove (what kustomize's JSON patches do)."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~")
                          for p in op["path"].lstrip("/").split("/")]
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list) and op["op"] == "add":
            node.insert(len(node) if last == "-" else int(last), op["value"])
        elif op["op"] in ("add", "replace"):
            assert op["op"] == "add" or (last in node if isinstance(node, dict)
                                         else int(last) < len(node)), op
            node[int(last) if isinstance(node, list) else last] = op["value"]
        else:
            raise AssertionError(f"unsupported patch op {op['op']!r}")
    return out
