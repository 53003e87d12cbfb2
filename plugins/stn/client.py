"""A client of the ``STN`` gRPC service (used by the agent's ipnet and by ``contiv-stn steal``)."""

from __future__ import annotations

import json
from typing import Any

import grpc

from plugins.stn.stn_pb2 import STNReply, STNRequest

SERVICE_NAME = "contiv.stn.STN"
DEFAULT_SOCKET = "/var/run/contiv/stn.sock"


class STNClientError(Exception):
    """The daemon refused the request or could not be reached; the message says which.

    ``refused`` is True when the daemon answered (with ``result = false`` or an error status),
    False when it could not be reached.
    """

    def __init__(self, message: str, refused: bool = True) -> None:
        super().__init__(message)
        self.refused = refused


def reply_dict(reply: STNReply) -> dict[str, Any]:
    """The reply as plain data (``record`` is the full record when the daemon sent one)."""
    return {
        "result": reply.result,
        "error": reply.error,
        "pci_address": reply.pci_address,
        "ip_addresses": list(reply.ip_addresses),
        "routes": [{"destination_subnet": r.destination_subnet, "next_hop_ip": r.next_hop_ip} for r in reply.routes],
        "kernel_driver": reply.kernel_driver,
        "detail": reply.detail,
        "record": json.loads(reply.record_json) if reply.record_json else None,
    }


class STNClient:
    """Async client on a unix socket; each call raises :class:`STNClientError` on any failure."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout_s: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> STNClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def call(self, method: str, interface: str, dhcp_enabled: bool = False) -> STNReply:
        """Call ``method`` (StealInterface, ReleaseInterface, StolenInterfaceInfo)."""
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"unix:{self.socket_path}")
        stub = self._channel.unary_unary(
            f"/{SERVICE_NAME}/{method}",
            request_serializer=STNRequest.SerializeToString,
            response_deserializer=STNReply.FromString,
        )
        try:
            reply: STNReply = await stub(
                STNRequest(interface_name=interface, dhcp_enabled=dhcp_enabled), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as err:
            if err.code() is grpc.StatusCode.UNAVAILABLE:
                raise STNClientError(f"contiv-stn is not reachable on {self.socket_path}: {err.details()}",
                                     refused=False) from None
            raise STNClientError(f"contiv-stn {method}: {err.details()} ({err.code().name})") from None
        if not reply.result:
            raise STNClientError(f"contiv-stn {method}: {reply.error or 'failed without a message'}")
        return reply

    async def steal(self, interface: str, dhcp_enabled: bool = False) -> STNReply:
        return await self.call("StealInterface", interface, dhcp_enabled)

    async def release(self, interface: str) -> STNReply:
        return await self.call("ReleaseInterface", interface)

    async def info(self, interface: str) -> STNReply:
        return await self.call("StolenInterfaceInfo", interface)
