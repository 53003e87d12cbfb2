"""``contiv-agent``: the vswitch agent that runs on every node."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from apps.vswitch.container import VSwitchContainer
from apps.vswitch.etcdaddr import EtcdAddressError, fill_etcd_endpoints
from apps.vswitch.malloc import MMAP_THRESHOLD_BYTES, fix_mmap_threshold
from core.app import AppSpec, CLIOverride, run_app

SPEC = AppSpec(
    name="contiv-agent",
    container=VSwitchContainer,
    default_config=Path(__file__).with_name("default.yaml"),
    description="Contiv vswitch agent: turns the cluster state into dataplane configuration.",
    cli_overrides=[
        CLIOverride("service-label", "label", flag="--node-name", env="NODE_NAME",
                    help="this node's name (env NODE_NAME)"),
    ],
)


def main() -> None:
    # Before anything allocates (apps/vswitch/malloc.py); the rest of the process-wide policy
    # is the ``process`` plugin's (apps/vswitch/process.py).
    fix_mmap_threshold(int(os.environ.get("CONTIV_MMAP_THRESHOLD_BYTES", MMAP_THRESHOLD_BYTES)))
    try:
        fill_etcd_endpoints()
    except EtcdAddressError as err:
        sys.stderr.write(f"contiv-agent: {err}\n")
        sys.exit(2)
    sys.exit(run_app(SPEC))


if __name__ == "__main__":
    main()
