"""The ``STN`` gRPC service on an owner-only unix socket (grpc.aio), after contiv.md 3.12.

Operational failures come back as a reply with ``result = false`` and ``error`` (as Contiv's
daemon did); malformed requests (empty or over-long interface names) are rejected with
``INVALID_ARGUMENT`` and the same message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from core.unixsocket import bind_owner_only, prepare_socket_path
from plugins.stn.record import StolenLink
from plugins.stn.service import ErrorKind, STNError, STNService
from plugins.stn.stn_pb2 import STNReply, STNRequest

SERVICE_NAME = "contiv.stn.STN"
#: Largest request accepted (an interface name and a flag need a few bytes).
MAX_MESSAGE_BYTES = 64 * 1024


def reply_of(link: StolenLink) -> STNReply:
    """The STN reply describing a recorded link."""
    return STNReply(
        result=True,
        pci_address=link.pci_address,
        ip_addresses=link.ip_addresses(),
        routes=[STNReply.Route(destination_subnet=r.dst, next_hop_ip=r.next_hop) for r in link.routes],
        kernel_driver=link.kernel_driver,
        detail=link.detail,
        record_json=json.dumps(link.model_dump(mode="json"), sort_keys=True),
    )


class STNServer:
    """Serves an :class:`STNService` on ``socket_path`` with permissions 0600."""

    def __init__(self, socket_path: str, service: STNService, log: logging.Logger) -> None:
        self.socket_path = Path(socket_path)
        self.service = service
        self.log = log
        self.requests = 0
        self.failures = 0
        self._server: grpc.aio.Server | None = None

    def _rpc(self, name: str, call: Callable[[STNRequest], Awaitable[StolenLink]]) -> Any:
        async def behaviour(request: STNRequest, context: grpc.aio.ServicerContext[Any, Any]) -> STNReply:
            self.requests += 1
            try:
                return reply_of(await call(request))
            except STNError as err:
                self.failures += 1
                self.log.warning("%s(%.40r): %s", name, request.interface_name, err)
                if err.kind is ErrorKind.INVALID:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
                return STNReply(result=False, error=str(err))

        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=STNRequest.FromString, response_serializer=STNReply.SerializeToString
        )

    async def start(self) -> None:
        prepare_socket_path(self.socket_path)
        service = self.service

        async def steal(req: STNRequest) -> StolenLink:
            return await service.steal(req.interface_name, req.dhcp_enabled)

        async def release(req: STNRequest) -> StolenLink:
            return await service.release(req.interface_name)

        async def info(req: STNRequest) -> StolenLink:
            return service.info(req.interface_name)

        server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        handlers = {
            "StealInterface": self._rpc("StealInterface", steal),
            "ReleaseInterface": self._rpc("ReleaseInterface", release),
            "StolenInterfaceInfo": self._rpc("StolenInterfaceInfo", info),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        # Owner-only from its creation, without a process-wide umask (other tasks and threads
        # keep creating files with their own modes meanwhile).
        bind_owner_only(self.socket_path, lambda address: server.add_insecure_port(f"unix:{address}"))
        await server.start()
        self._server = server
        self.log.info("STN serving on %s", self.socket_path)

    async def stop(self, grace_s: float = 2.0) -> None:
        if self._server is None:
            return
        await self._server.stop(grace_s)
        self._server = None
        self.socket_path.unlink(missing_ok=True)
