"""A minimal event consumer standing in for the controller: one task, one event at a time.

It processes AddPod by filling a result (an address per pod from a small pool) and DeletePod
by releasing it, records every event, and can be told to fail or to stall the next events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from plugins.controller.api import Event
from plugins.podmanager.api import AddPod, DeletePod, PodInterface, PodIPAddress, PodRoute

Wire = Callable[[AddPod, str], Awaitable[None]]
Unwire = Callable[[DeletePod], Awaitable[None]]


class QueueFullError(Exception):
    """Raised by push_event while ``refuse`` is set."""


class MinimalController:
    """``push_event`` + an event loop task; ``wire``/``unwire`` optionally touch the kernel."""

    def __init__(self, wire: Wire | None = None, unwire: Unwire | None = None) -> None:
        self.events: list[Event] = []
        self.fail_next: list[str] = []
        self.refuse = False
        self.stall = False
        #: When set, the next AddPod leaves a pending write that fails with this message.
        self.persist_error: str | None = None
        self.addresses: dict[str, str] = {}  # pod "ns/name" -> address
        self._free = [f"10.99.0.{i}" for i in range(2, 250)]
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._wire = wire
        self._unwire = unwire

    async def push_event(self, event: Event) -> None:
        if self.refuse:
            raise QueueFullError("event queue is full")
        if self._task is None:
            self._task = asyncio.create_task(self._loop())
        await self._queue.put(event)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while True:
            event = await self._queue.get()
            if self.stall:
                continue  # never answered: the producer must time out
            self.events.append(event)
            try:
                await self._process(event)
            except Exception as exc:
                event.done(exc)
            else:
                event.done(None)

    async def _process(self, event: Event) -> None:
        if self.fail_next:
            raise RuntimeError(self.fail_next.pop(0))
        if isinstance(event, AddPod):
            key = str(event.pod.id)
            address = self.addresses.get(key) or self._free.pop(0)
            self.addresses[key] = address
            if self._wire is not None:
                await self._wire(event, address)
            host = "veth-" + event.pod.container_id[:8]
            event.interfaces = [
                PodInterface(name=host),
                PodInterface(name=event.pod.interface_name, sandbox=event.pod.netns_path),
            ]
            event.ip_addresses = [PodIPAddress(f"{address}/24", "10.99.0.1", interface=1)]
            event.routes = [PodRoute("0.0.0.0/0", "10.99.0.1")]
            event.dns = {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
            if self.persist_error is not None:
                message, self.persist_error = self.persist_error, None

                async def failing_write() -> None:
                    await asyncio.sleep(0)
                    raise OSError(message)

                event.before_reply.append(failing_write)
        elif isinstance(event, DeletePod):
            if self._unwire is not None:
                await self._unwire(event)
            key = str(event.pod.id)
            if key in self.addresses:
                self._free.insert(0, self.addresses.pop(key))
