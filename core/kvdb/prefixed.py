"""A prefixed view of a broker: keys are relative to the prefix, in and out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from core.kvdb.api import (
    Compare,
    KeyValue,
    KVBroker,
    Op,
    TxnOp,
    TxnResult,
    WatchEvent,
    WatchItem,
    WatchResync,
)


class PrefixedBroker(KVBroker):
    """Every key given to this view is prefixed before reaching the underlying broker."""

    def __init__(self, inner: KVBroker, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def _out(self, kv: KeyValue) -> KeyValue:
        return KeyValue(kv.key[len(self.prefix):], kv.value, kv.mod_revision, kv.create_revision, kv.lease)

    def _op(self, op: TxnOp) -> TxnOp:
        if isinstance(op, Op.Put):
            return Op.Put(self.prefix + op.key, op.value, op.lease)
        if isinstance(op, Op.Delete):
            return Op.Delete(self.prefix + op.key, op.prefix)
        return Op.Get(self.prefix + op.key)

    async def get(self, key: str) -> KeyValue | None:
        kv = await self.inner.get(self.prefix + key)
        return None if kv is None else self._out(kv)

    async def list(self, prefix: str, keys_only: bool = False) -> list[KeyValue]:
        return [self._out(kv) for kv in await self.inner.list(self.prefix + prefix, keys_only)]

    async def revision(self) -> int:
        return await self.inner.revision()

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        return await self.inner.put(self.prefix + key, value, lease)

    async def delete(self, key: str, prefix: bool = False) -> int:
        return await self.inner.delete(self.prefix + key, prefix)

    async def put_if_absent(self, key: str, value: bytes, lease: int = 0) -> bool:
        return await self.inner.put_if_absent(self.prefix + key, value, lease)

    async def compare_and_put(
        self, key: str, value: bytes, expected_mod_revision: int, lease: int = 0
    ) -> bool:
        return await self.inner.compare_and_put(self.prefix + key, value, expected_mod_revision, lease)

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[TxnOp], failure: Sequence[TxnOp] = ()
    ) -> TxnResult:
        result = await self.inner.txn(
            [Compare(self.prefix + c.key, c.target, c.expected) for c in compare],
            [self._op(op) for op in success],
            [self._op(op) for op in failure],
        )
        result.gets = [None if kv is None else self._out(kv) for kv in result.gets]
        return result

    async def grant_lease(self, ttl_s: int) -> int:
        return await self.inner.grant_lease(ttl_s)

    async def refresh_lease(self, lease: int) -> None:
        await self.inner.refresh_lease(lease)

    async def revoke_lease(self, lease: int) -> None:
        await self.inner.revoke_lease(lease)

    async def watch(self, prefix: str, from_revision: int = 0) -> AsyncIterator[WatchItem]:
        n = len(self.prefix)
        async for item in self.inner.watch(self.prefix + prefix, from_revision):
            if isinstance(item, WatchResync):
                yield WatchResync([self._out(kv) for kv in item.snapshot], item.revision, item.reason)
            else:
                yield WatchEvent(item.type, item.key[n:], item.value, item.prev_value, item.revision)

    async def healthy(self) -> bool:
        return await self.inner.healthy()

    def prefixed(self, prefix: str) -> KVBroker:
        return PrefixedBroker(self.inner, self.prefix + prefix)
