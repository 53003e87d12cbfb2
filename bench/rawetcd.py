"""The benches' baseline: aetcd's etcd v3 bindings (``aetcd.rpc``) called directly over a gRPC
channel with the same mutual TLS as the broker, without the broker in between.

``aetcd.Client`` only opens plain-text channels, so "raw aetcd over TLS" is its generated
stubs on a TLS channel: the work any TLS client of etcd must do, and nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

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

    async def put(self, key: bytes, value: bytes) -> Any:
        return await self.kv.Put(rpc.PutRequest(key=key, value=value))

    async def get(self, key: bytes) -> Any:
        return await self.kv.Range(rpc.RangeRequest(key=key))

    async def count_events(self, prefix: bytes, count: int, ready: asyncio.Event) -> None:
        """Watch ``prefix`` until ``count`` events arrived; ``ready`` is set once etcd created it."""
        done = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=prefix, range_end=prefix_range_end(prefix)))
            await done.wait()

        call = self.watch_stub.Watch(requests())
        got = 0
        async for rsp in call:
            if rsp.created:
                ready.set()
            got += len(rsp.events)
            if got >= count:
                break
        done.set()
        call.cancel()

    async def close(self) -> None:
        await self.channel.close()
