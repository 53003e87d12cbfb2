"""contiv-stn's app definition (the daemon): its container, default YAML and flags."""

from __future__ import annotations

from pathlib import Path

from apps.stn.container import STNContainer
from core.app import AppSpec, CLIOverride

SPEC = AppSpec(
    name="contiv-stn",
    container=STNContainer,
    default_config=Path(__file__).with_name("default.yaml"),
    description="Contiv STN daemon: steals a node's NIC for the dataplane and gives it back. "
    "Subcommands steal|release|info IFNAME talk to a running daemon.",
    cli_overrides=[
        CLIOverride("stn", "socket_path", flag="--socket", help="unix socket of the STN gRPC service"),
        CLIOverride("stn", "state_file", flag="--state-file", help="file keeping the record of stolen NICs"),
    ],
)
