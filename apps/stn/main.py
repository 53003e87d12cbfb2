"""``contiv-stn``: the steal-the-NIC daemon, and its operator subcommands.

``contiv-stn [--config FILE] [--validate-config] [--version]`` runs the daemon;
``contiv-stn steal|release|info IFNAME [--socket PATH]`` talks to a running one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from apps.stn import cli
from apps.stn.container import STNContainer
from core.app import AppSpec, CLIOverride, run_app

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


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in cli.COMMANDS:
        sys.exit(cli.run(args))
    sys.exit(run_app(SPEC, args))


if __name__ == "__main__":
    main()
