"""The benches' baseline: aetcd over the same mutual TLS as the broker, without the broker.

``aetcd.Client`` only opens plain-text channels, so "raw aetcd over TLS" is what its ``put``,
``get`` and ``watch_prefix`` do, on a TLS channel: aetcd's generated stubs (``aetcd.rpc``) with
the client's timeout and metadata, and each result wrapped in aetcd's own public types
(``aetcd.Put``, ``aetcd.Get``, ``aetcd.Event``, events handed over through a queue as its
watcher does).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aetcd
import grpc
from aetcd import rpc

from core.kvdb.etcd import TLSFiles, prefix_range_end


class RawEtcd:
    """put, get and a counting prefix watch on aetcd's stubs over a mutual-TLS channel."""

    def __init__(self, endpoint: str, tls: TLSFiles) -> None:
        options = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
        self.channel = grpc.aio.secure_channel(endpoint, tls.credentials(), options=options)
        self.kv = rpc.KVStub(self.channel)
        self.watch_stub = rpc.WatchStub(self.channel)

    async def connect(self) -> None:
        await asyncio.wait_for(self.channel.channel_ready(), 10)

    async def put(self, key: bytes, value: bytes) -> aetcd.Put:
        rsp = await self.kv.Put(rpc.PutRequest(key=key, value=value), timeout=None, metadata=None)
        return aetcd.Put(rsp.header, None)

    async def get(self, key: bytes) -> aetcd.Get | None:
        rsp = await self.kv.Range(rpc.RangeRequest(key=key), timeout=None, metadata=None)
        if rsp.count < 1:
            return None
        return aetcd.Get(rsp.header, rsp.kvs.pop())

    async def count_events(self, prefix: bytes, count: int, ready: asyncio.Event) -> None:
        """Watch ``prefix`` until ``count`` events arrived; ``ready`` is set once etcd created it."""
        done = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=prefix, range_end=prefix_range_end(prefix)))
            await done.wait()

        events: asyncio.Queue[aetcd.Event] = asyncio.Queue()

        async def receive() -> None:
            async for rsp in self.watch_stub.Watch(requests()):
                if rsp.created:
                    ready.set()
                for event in rsp.events:
                    events.put_nowait(aetcd.Event(event.type, event.kv, None))

        receiver = asyncio.ensure_future(receive())
        for _ in range(count):
            await events.get()
        done.set()
        receiver.cancel()

    async def close(self) -> None:
        await self.channel.close()
