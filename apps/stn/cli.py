"""Operator subcommands of contiv-stn that talk to a running daemon over its socket.

``contiv-stn steal IFNAME``, ``contiv-stn release IFNAME``, ``contiv-stn info IFNAME``
(``--socket PATH``, ``--dhcp`` for steal): print the reply as JSON and exit 0, or print the
daemon's error to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from plugins.stn.client import DEFAULT_SOCKET, STNClient, STNClientError, reply_dict

COMMANDS = {"steal": "StealInterface", "release": "ReleaseInterface", "info": "StolenInterfaceInfo"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="contiv-stn", description="Talk to a running contiv-stn daemon.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, method in COMMANDS.items():
        cmd = sub.add_parser(name, help=f"{method} over the daemon's socket")
        cmd.add_argument("interface", metavar="IFNAME", help="the NIC (Linux interface name)")
        cmd.add_argument("--socket", default=DEFAULT_SOCKET, help=f"the daemon's socket (default {DEFAULT_SOCKET})")
        cmd.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the daemon")
        if name == "steal":
            cmd.add_argument("--dhcp", action="store_true", help="the NIC's address came from DHCP")
    return p


async def _call(args: argparse.Namespace) -> int:
    async with STNClient(args.socket, timeout_s=args.timeout) as client:
        try:
            reply = await client.call(COMMANDS[args.command], args.interface, getattr(args, "dhcp", False))
        except STNClientError as err:
            print(f"contiv-stn {args.command}: {err}", file=sys.stderr)
            return 1
    data = reply_dict(reply)
    print(json.dumps(data["record"] if args.command == "info" else data, indent=2, sort_keys=True))
    return 0


def run(argv: Sequence[str]) -> int:
    return asyncio.run(_call(parser().parse_args(argv)))
