"""``contiv-lab delete -f FILE``: remove every object a manifest created, as ``kubectl delete -f``.

Pods are torn down by the kubelet stand-in (CNI DEL, namespace removed); every other kind is
taken out of the directory KSR reflects. Deleting a Namespace deletes what lives in it (its pods
and namespaced objects), as the API server does. Objects that do not exist are reported, not
fatal (``kubectl delete --ignore-not-found`` style: the rest still goes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from apps.lab.cluster import Lab
from apps.lab.errors import LabError
from apps.lab.state import remove_manifest

#: The label the API server puts on every namespace.
NAME_LABEL = "kubernetes.io/metadata.name"


def with_name_label(obj: dict[str, Any]) -> dict[str, Any]:
    """A Namespace manifest carrying ``kubernetes.io/metadata.name`` (the API server sets it)."""
    meta = dict(obj.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), NAME_LABEL: str(meta.get("name", ""))}
    return {**obj, "metadata": meta}


def _manifests_in(lab: Lab, namespace: str) -> list[str]:
    found = []
    for path in sorted(lab.state.manifests.glob("*.yaml")):
        try:
            obj = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(obj, dict) and obj.get("kind") not in ("Namespace", "Node", "Pod") \
                and (obj.get("metadata") or {}).get("namespace", "default") == namespace:
            found.append(path.name)
    return found


def delete_objects(lab: Lab, objects: Iterable[dict[str, Any]]) -> list[str]:
    """Delete what ``objects`` describe (namespaces last); returns one line per object."""
    from apps.lab.pods import Kubelet

    kubelet = Kubelet(lab)
    ordered = sorted(objects, key=lambda o: o.get("kind") == "Namespace")
    lines: list[str] = []
    errors: list[str] = []
    for obj in ordered:
        kind = str(obj.get("kind") or "")
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        ns = str(meta.get("namespace") or "default")
        if not name:
            errors.append(f"a {kind} has no metadata.name")
            continue
        try:
            if kind == "Pod":
                kubelet.delete_pod(ns, name)
                lines.append(f"pod/{ns}/{name} deleted")
            elif kind == "Namespace":
                for key, pod in sorted(lab.state.pods.items()):
                    if pod.namespace == name:
                        kubelet.delete_pod(pod.namespace, pod.name)
                        lines.append(f"pod/{key} deleted (namespace {name})")
                for filename in _manifests_in(lab, name):
                    remove_manifest(lab.state, filename)
                    lines.append(f"{filename.removesuffix('.yaml')} deleted (namespace {name})")
                lines.append(_remove(lab, f"namespace-{name}.yaml", f"namespace/{name}"))
            elif kind == "Node":
                raise LabError("nodes are removed with 'contiv-lab node remove'")
            else:
                lines.append(_remove(lab, f"{kind.lower()}-{ns}-{name}.yaml", f"{kind.lower()}/{ns}/{name}"))
        except LabError as err:
            errors.append(f"{kind.lower()}/{ns}/{name}: {err}")
    if any(o.get("kind") in ("Service", "Namespace") for o in ordered):
        from apps.lab.services import sync_endpoints

        sync_endpoints(lab.state)  # a deleted service's EndpointSlices go with it
    if errors:
        raise LabError("; ".join(errors) + (f" ({len(lines)} deleted)" if lines else ""))
    return lines


def _remove(lab: Lab, filename: str, what: str) -> str:
    if not (lab.state.manifests / filename).exists():
        return f"{what} not found"
    remove_manifest(lab.state, filename)
    return f"{what} deleted"
