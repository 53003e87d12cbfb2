"""One gRPC call from ``contiv-cni`` to the agent's ``RemoteCNI`` service.

grpc and the generated messages are imported only here, when a call is made, so VERSION and
input errors answer without loading them.
"""

from __future__ import annotations

import os

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


def call_agent(server: str, command: str, fields: dict[str, str]) -> Any:
    """Send the request; return the ``CNIReply`` or raise a :class:`CNIError`."""
    if server.startswith("/") and not os.path.exists(server):
        raise CNIError(
            CNICode.TRY_AGAIN_LATER,
            f"the contiv agent is not reachable: socket {server} does not exist",
        )
    import grpc

    from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest

    request = CNIRequest(**fields)
    with grpc.insecure_channel(grpc_target(server)) as channel:
        rpc = channel.unary_unary(
            f"/contiv.cni.RemoteCNI/{_METHODS[command]}",
            request_serializer=CNIRequest.SerializeToString,
            response_deserializer=CNIReply.FromString,
        )
        try:
            return rpc(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            status = exc.code()
            detail = exc.details()
            if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise CNIError(
                    CNICode.TRY_AGAIN_LATER,
                    f"the contiv agent at {server} is not reachable: {detail}",
                ) from exc
            raise CNIError(
                CNICode.INTERNAL, f"the contiv agent at {server} failed the call: {status.name}",
                str(detail),
            ) from exc
