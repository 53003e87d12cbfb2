"""Render the Helm chart deploy/helm/contiv into one manifest (deploy/contiv.yaml).

    python3 deploy/render.py > deploy/contiv.yaml            # the committed manifest
    python3 deploy/render.py --set plugins.service=true ...   # with other values

Helm v4 runs as a library (PyPI ``helm-python-sdk``): no helm binary, no cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "helm" / "contiv"
RELEASE = "contiv"
NAMESPACE = "kube-system"
HEADER = """\
# contiv-py: everything to install the plugin on a Kubernetes cluster (kubectl apply -f).
# Generated from the Helm chart deploy/helm/contiv with its default values by
# `python3 deploy/render.py > deploy/contiv.yaml`; do not edit by hand.
"""


#: Helm's install order (kinds that others refer to come first: a DaemonSet created before its
#: ServiceAccount fails its pods with FailedCreate until the account exists).
KIND_ORDER = ("Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
              "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
              "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
              "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList",
              "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
              "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob")


def _kind_rank(doc: str) -> int:
    for line in doc.splitlines():
        if line.startswith("kind:"):
            kind = line.split(":", 1)[1].strip()
            return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return len(KIND_ORDER)


def render(values: dict[str, Any] | None = None) -> str:
    """The chart's objects as one multi-document YAML, in Helm's install order by kind, then by
    template path (stable)."""
    import helm_python as helm

    chart = helm.Chart.load(CHART)
    rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    parts = []
    for path in sorted(rendered):
        if not path.endswith(".yaml") or not rendered[path].strip():
            continue
        for doc in rendered[path].split("\n---"):
            body = doc.strip().removeprefix("---").strip()
            if body and any(line and not line.startswith("#") for line in body.splitlines()):
                parts.append(f"# Source: {path}\n{body}\n")
    parts.sort(key=_kind_rank)
    return HEADER + "---\n" + "---\n".join(parts)


def objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE, as helm --set")
    args = parser.parse_args(argv)
    import helm_python as helm

    values: dict[str, Any] = {}
    for expr in args.set:
        values = _merge(values, helm.parse_set_string(expr))
    sys.stdout.write(render(values))
    return 0


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


if __name__ == "__main__":
    sys.exit(main())
