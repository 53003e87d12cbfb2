"""``contiv-ksr``: reflects the Kubernetes state (API server or a manifest directory) into etcd."""

from __future__ import annotations

import sys
from pathlib import Path

from apps.ksr.container import KSRContainer
from core.app import AppSpec, CLIOverride, run_app

SPEC = AppSpec(
    name="contiv-ksr",
    container=KSRContainer,
    default_config=Path(__file__).with_name("default.yaml"),
    description="Contiv Kubernetes State Reflector: mirrors Kubernetes objects into etcd.",
    cli_overrides=[
        CLIOverride("ksr", "source_dir", flag="--source-dir", implies={"source": "dir"},
                    help="reflect the Kubernetes manifests in this directory instead of an API server"),
        CLIOverride("ksr", "kubeconfig", flag="--kubeconfig",
                    help="kubeconfig of the API server (default: in-cluster, then ~/.kube/config)"),
    ],
)


def main() -> None:
    sys.exit(run_app(SPEC))


if __name__ == "__main__":
    main()
