"""One call from ``contiv-cni`` to the agent's ``RemoteCNI`` service.

It uses :mod:`apps.cni.wire` (standard library only) instead of grpcio and the generated
messages, which would triple the binary's start time.
"""

from __future__ import annotations

import os

from apps.cni.wire import CallError, WireError, decode_message, encode_request, unary_call
from plugins.podmanager.cnicodes import CNICode, CNIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: How long the binary waits for the agent (above the agent's own 60 s event timeout).
CALL_TIMEOUT_S = 90.0
_METHODS = {"ADD": "Add", "DEL": "Delete", "CHECK": "Check"}


def grpc_target(server: str) -> str:
    """``grpcServer`` as a gRPC target: a path (starts with ``/``) is a unix socket."""
    return f"unix:{server}" if server.startswith("/") else server


def call_agent(
    server: str, command: str, fields: dict[str, str], timeout_s: float = CALL_TIMEOUT_S
) -> Any:
    """Send the request; return the decoded ``CNIReply`` or raise a :class:`CNIError`."""
    if server.startswith("/") and not os.path.exists(server):
        raise CNIError(
            CNICode.TRY_AGAIN_LATER,
            f"the contiv agent is not reachable: socket {server} does not exist",
        )
    path = f"/contiv.cni.RemoteCNI/{_METHODS[command]}"
    try:
        raw = unary_call(grpc_target(server), path, encode_request(**fields), timeout_s)
        return decode_message(raw)
    except CallError as exc:
        if exc.unavailable:
            raise CNIError(
                CNICode.TRY_AGAIN_LATER, f"the contiv agent at {server} is not reachable: {exc}"
            ) from exc
        raise CNIError(CNICode.INTERNAL, f"the contiv agent at {server} failed the call: {exc}") from exc
    except WireError as exc:
        raise CNIError(CNICode.INTERNAL, f"bad reply from the contiv agent at {server}: {exc}") from exc
