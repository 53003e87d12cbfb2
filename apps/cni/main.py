"""``contiv-cni``: the CNI plugin binary a container runtime executes for every pod.

It implements the CNI specification (0.3.1, 0.4.0, 1.0.0: ADD, DEL, CHECK, VERSION), reads
the network configuration from stdin and the ``CNI_*`` environment, and forwards ADD, DEL and
CHECK to the node's agent over gRPC (the socket named by the ``grpcServer`` key). Errors are
printed as the specification's error JSON with a non-zero exit status.
"""

from __future__ import annotations

import os
import sys

from apps.cni import jsonlite as json
from apps.cni.spec import (
    COMMANDS,
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    Invocation,
    error_json,
    parse_config,
    parse_invocation,
    result_json,
    version_json,
)
from plugins.podmanager.cnicodes import CNICode, CNIError

# Type-only imports: mypy treats any TYPE_CHECKING as true; at run time typing stays unloaded.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TextIO


def _requested_version(raw: str) -> str:
    """The cniVersion the caller asked for, when it is one we speak (for error output)."""
    try:
        version = json.loads(raw).get("cniVersion")
    except (ValueError, AttributeError):
        return LATEST_VERSION
    return version if version in SUPPORTED_VERSIONS else LATEST_VERSION


def _log(config: Mapping[str, Any] | None, line: str) -> None:
    """Append to the configured ``logFile`` (best effort: logging never fails a call)."""
    path = config.get("logFile") if config else None
    if not isinstance(path, str) or not path:
        return
    import time

    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pid={os.getpid()} {line}\n")
    except OSError:
        pass


def _forward(inv: Invocation) -> dict[str, Any] | None:
    from apps.cni.client import call_agent

    reply = call_agent(
        inv.grpc_server,
        inv.command,
        {
            "version": inv.version,
            "container_id": inv.container_id,
            "network_namespace": inv.netns,
            "interface_name": inv.ifname,
            "extra_nw_config": inv.raw_config,
            "extra_arguments": inv.args,
        },
    )
    if reply.result != 0:
        raise CNIError(reply.result, reply.error, reply.error_details)
    if inv.command == "ADD":
        return result_json(inv.version, reply)
    return None


def run(environ: Mapping[str, str], stdin: str, stdout: TextIO) -> int:
    """Execute one CNI command; returns the exit status."""
    command = environ.get("CNI_COMMAND", "")
    config: dict[str, Any] | None = None
    try:
        if command == "VERSION":
            stdout.write(json.dumps(version_json(_requested_version(stdin) if stdin.strip()
                                                 else LATEST_VERSION)))
            return 0
        if command not in COMMANDS:
            raise CNIError(
                CNICode.INVALID_ENVIRONMENT,
                f"CNI_COMMAND {command!r} is not one of {', '.join(COMMANDS)}"
                if command else "environment variable CNI_COMMAND is not set",
            )
        config = parse_config(stdin)
        inv = parse_invocation(command, environ, stdin, config)
        result = _forward(inv)
    except CNIError as exc:
        _log(config, f"{command} {environ.get('CNI_CONTAINERID', '')} failed: {exc}")
        stdout.write(json.dumps(error_json(exc, _requested_version(stdin))))
        return 1
    except Exception as exc:  # noqa: BLE001 -- the runtime needs JSON, never a bare traceback
        err = CNIError(CNICode.INTERNAL, f"contiv-cni internal error: {exc!r}")
        stdout.write(json.dumps(error_json(err, _requested_version(stdin))))
        return 1
    _log(config, f"{command} {inv.container_id} ok")
    if result is not None:
        stdout.write(json.dumps(result))
    return 0


def main() -> int:
    """Console-script entry point (``contiv-cni``)."""
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    status = run(os.environ, stdin, sys.stdout)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
