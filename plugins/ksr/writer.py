"""Batched, leader-guarded writes of reflected objects into the KV store.

Every write is an etcd transaction of at most ``max_ops`` operations; when leader election is
on, each transaction also compares the election key with this instance's identity, so a replica
that lost the leadership can never overwrite the new leader's state (the transaction fails and
the writer reports :class:`NotLeaderError`). Independent batches are sent concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from core.kvdb.api import Compare, KVBroker, KVError, Op, TxnOp


class NotLeaderError(KVError):
    """A guarded write failed because this instance is no longer the leader."""


class Writer:
    """Writes puts/deletes (absolute keys) as guarded transactions."""

    def __init__(
        self,
        broker: KVBroker,
        *,
        max_ops: int = 128,
        concurrency: int = 8,
        guard: Compare | None = None,
    ) -> None:
        self.broker = broker
        self.max_ops = max_ops
        self.concurrency = concurrency
        self.guard = guard
        #: Transactions committed and operations written (for statistics and benchmarks).
        self.txns = 0
        self.ops = 0

    async def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        """Write everything; raises :class:`KVError` (or :class:`NotLeaderError`) on failure."""
        ops: list[TxnOp] = [Op.Put(k, v) for k, v in puts.items()]
        ops.extend(Op.Delete(k) for k in deletes)
        if not ops:
            return
        batches = [ops[i: i + self.max_ops] for i in range(0, len(ops), self.max_ops)]
        if len(batches) == 1:
            await self._commit(batches[0])
            return
        limit = asyncio.Semaphore(self.concurrency)

        async def one(batch: list[TxnOp]) -> None:
            async with limit:
                await self._commit(batch)

        results = await asyncio.gather(*(one(b) for b in batches), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _commit(self, batch: list[TxnOp]) -> None:
        compare = [self.guard] if self.guard is not None else []
        result = await self.broker.txn(compare, batch)
        if not result.succeeded:
            raise NotLeaderError("the leader-election key no longer names this instance")
        self.txns += 1
        self.ops += len(batch)

    async def delete_prefix(self, prefix: str) -> None:
        """Remove everything under ``prefix`` (guarded like every other write)."""
        await self._commit([Op.Delete(prefix, prefix=True)])
