"""``contiv-stn``: the steal-the-NIC daemon, and its operator subcommands.

``contiv-stn [--config FILE] [--validate-config] [--version]`` runs the daemon;
``contiv-stn steal|release|info IFNAME [--socket PATH]`` talks to a running one. The
subcommands import only the gRPC client (the daemon's plugins load in a few seconds on a busy
node; an operator's command should not wait for them).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from apps.stn import cli


def __getattr__(name: str) -> Any:
    if name == "SPEC":  # the daemon's AppSpec, imported on first use
        from apps.stn.app import SPEC

        return SPEC
    raise AttributeError(name)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in cli.COMMANDS:
        sys.exit(cli.run(args))
    from apps.stn.app import SPEC
    from core.app import run_app

    sys.exit(run_app(SPEC, args))


if __name__ == "__main__":
    main()
