"""The etcd backend, on aetcd's etcd v3 API bindings (``aetcd.rpc``) over a gRPC channel.

aetcd's ``Client`` has no TLS and hides response revisions, so the broker owns the channel
(mutual TLS; plain text only when asked for with ``insecure=True``) and calls aetcd's generated
KV, Lease and Watch stubs directly. Errors are mapped to :class:`KVUnavailableError` (retriable) and
:class:`KVError`. Watches resume after the last delivered revision when the connection comes
back, and turn a compacted history into a :class:`WatchResync`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from aetcd import rpc

from core.kvdb.api import (
    Compare,
    EventType,
    KeyValue,
    KVBroker,
    KVError,
    KVUnavailableError,
    Op,
    TxnOp,
    TxnResult,
    WatchEvent,
    WatchItem,
    WatchResync,
)
from core.kvdb.etcdtls import ETCD_SERVER_NAME as ETCD_SERVER_NAME
from core.kvdb.etcdtls import TLSFiles as TLSFiles
from core.kvdb.etcdtls import plaintext_refused

log = logging.getLogger("contiv.kvdb.etcd")

_RETRIABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
}


def _retriable(err: grpc.aio.AioRpcError) -> bool:
    """A connection problem: over TLS, a member shutting down resets streams (INTERNAL,
    "Stream removed ... RST_STREAM") instead of closing them with UNAVAILABLE."""
    if err.code() in _RETRIABLE:
        return True
    return err.code() == grpc.StatusCode.INTERNAL and "RST_STREAM" in (err.details() or "")


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range end that selects every key starting with ``prefix``."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _kv(kv: Any) -> KeyValue:
    return KeyValue(kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision, kv.lease)


async def _watch_requests(create: Any, until: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    """The request stream of one watch: the create request, then open until cancelled."""
    yield create
    await until.get()


class EtcdBroker(KVBroker):
    """A :class:`KVBroker` on a real etcd cluster."""

    def __init__(
        self,
        endpoints: Sequence[str],
        dial_timeout_s: float = 3.0,
        op_timeout_s: float = 5.0,
        tls: TLSFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        insecure: bool = False,
    ) -> None:
        if not endpoints:
            raise KVError("no etcd endpoints configured")
        if tls is None and not insecure:
            raise KVError(plaintext_refused(endpoints))
        if tls is not None and any(e.startswith("http://") for e in endpoints):
            raise KVError(f"etcd endpoint {', '.join(endpoints)}: http:// with TLS configured; use host:port")
        self.endpoints = [e.removeprefix("http://").removeprefix("https://") for e in endpoints]
        self.dial_timeout_s = dial_timeout_s
        self.op_timeout_s = op_timeout_s
        self.tls = tls
        self.username = username
        self.password = password
        self._channel: grpc.aio.Channel | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._kv: Any = None
        self._lease: Any = None
        self._watch: Any = None

    # ---------------------------------------------------------------- connection

    def _target(self) -> str:
        if len(self.endpoints) > 1 and all(e.split(":")[0].replace(".", "").isdigit() for e in self.endpoints):
            return "ipv4:" + ",".join(self.endpoints)
        return self.endpoints[0]

    async def connect(self) -> None:
        """Open the channel and wait (up to the dial timeout) until etcd answers."""
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   ("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000)]
        if self.tls is not None:
            if self.tls.server_name:
                options.append(("grpc.ssl_target_name_override", self.tls.server_name))
            self._channel = grpc.aio.secure_channel(self._target(), self.tls.credentials(), options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self._target(), options=options)
        self._kv = rpc.KVStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        try:
            async with asyncio.timeout(self.dial_timeout_s):
                await self._channel.channel_ready()
        except TimeoutError:
            raise KVUnavailableError(
                f"etcd at {', '.join(self.endpoints)} did not answer within {self.dial_timeout_s}s"
            ) from None
        if self.username is not None:
            auth = rpc.AuthStub(self._channel)
            try:
                rsp = await auth.Authenticate(
                    rpc.AuthenticateRequest(name=self.username, password=self.password or ""),
                    timeout=self.op_timeout_s,
                )
            except grpc.aio.AioRpcError as err:
                raise KVError(f"etcd authentication as {self.username!r} failed: {err.details()}") from err
            self._metadata = (("token", rsp.token),)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The connected gRPC channel (for etcd APIs the broker does not wrap, e.g. auth set-up)."""
        if self._channel is None:
            raise KVUnavailableError("etcd broker is not connected")
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _call(self, method: Any, request: Any) -> Any:
        if self._channel is None:
            raise KVUnavailableError("etcd broker is not connected")
        try:
            return await method(request, timeout=self.op_timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            if _retriable(err):
                raise KVUnavailableError(f"etcd unavailable: {err.details()}") from err
            raise KVError(f"etcd error {err.code().name}: {err.details()}") from err

    # ---------------------------------------------------------------- reads

    async def get(self, key: str) -> KeyValue | None:
        rsp = await self._call(self._kv.Range, rpc.RangeRequest(key=key.encode()))
        return _kv(rsp.kvs[0]) if rsp.kvs else None

    async def _range(self, prefix: str, keys_only: bool = False) -> tuple[list[KeyValue], int]:
        raw = prefix.encode()
        req = rpc.RangeRequest(key=raw or b"\0", range_end=prefix_range_end(raw), keys_only=keys_only,
                               sort_order=rpc.RangeRequest.ASCEND, sort_target=rpc.RangeRequest.KEY)
        rsp = await self._call(self._kv.Range, req)
        return [_kv(kv) for kv in rsp.kvs], rsp.header.revision

    async def list(self, prefix: str, keys_only: bool = False) -> list[KeyValue]:
        return (await self._range(prefix, keys_only))[0]

    async def revision(self) -> int:
        rsp = await self._call(self._kv.Range, rpc.RangeRequest(key=b"\0", limit=1, keys_only=True))
        return int(rsp.header.revision)

    # ---------------------------------------------------------------- writes

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        rsp = await self._call(self._kv.Put, rpc.PutRequest(key=key.encode(), value=value, lease=lease))
        return int(rsp.header.revision)

    async def delete(self, key: str, prefix: bool = False) -> int:
        raw = key.encode()
        req = rpc.DeleteRangeRequest(key=raw, range_end=prefix_range_end(raw) if prefix else b"")
        rsp = await self._call(self._kv.DeleteRange, req)
        return int(rsp.deleted)

    async def put_if_absent(self, key: str, value: bytes, lease: int = 0) -> bool:
        result = await self.txn([Compare(key, "exists", False)], [Op.Put(key, value, lease)])
        return result.succeeded

    async def compare_and_put(
        self, key: str, value: bytes, expected_mod_revision: int, lease: int = 0
    ) -> bool:
        result = await self.txn(
            [Compare(key, "mod_revision", expected_mod_revision)], [Op.Put(key, value, lease)]
        )
        return result.succeeded

    @staticmethod
    def _compare(cmp: Compare) -> Any:
        msg = rpc.Compare(key=cmp.key.encode(), result=rpc.Compare.EQUAL)
        if cmp.target == "exists":
            # etcd has no "exists": a key exists iff its create revision is non-zero.
            msg.target = rpc.Compare.CREATE
            msg.create_revision = 0
            msg.result = rpc.Compare.NOT_EQUAL if cmp.expected else rpc.Compare.EQUAL
        elif cmp.target == "value":
            msg.target = rpc.Compare.VALUE
            msg.value = cmp.expected if isinstance(cmp.expected, bytes) else str(cmp.expected).encode()
        elif cmp.target == "mod_revision":
            msg.target = rpc.Compare.MOD
            msg.mod_revision = int(cmp.expected)
        elif cmp.target == "create_revision":
            msg.target = rpc.Compare.CREATE
            msg.create_revision = int(cmp.expected)
        else:
            raise KVError(f"unknown compare target {cmp.target!r}")
        return msg

    @staticmethod
    def _request_op(op: TxnOp) -> Any:
        if isinstance(op, Op.Put):
            return rpc.RequestOp(request_put=rpc.PutRequest(key=op.key.encode(), value=op.value, lease=op.lease))
        if isinstance(op, Op.Delete):
            raw = op.key.encode()
            return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(
                key=raw, range_end=prefix_range_end(raw) if op.prefix else b""))
        return rpc.RequestOp(request_range=rpc.RangeRequest(key=op.key.encode()))

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[TxnOp], failure: Sequence[TxnOp] = ()
    ) -> TxnResult:
        req = rpc.TxnRequest(
            compare=[self._compare(c) for c in compare],
            success=[self._request_op(op) for op in success],
            failure=[self._request_op(op) for op in failure],
        )
        rsp = await self._call(self._kv.Txn, req)
        result = TxnResult(succeeded=rsp.succeeded, revision=rsp.header.revision)
        for item in rsp.responses:
            if item.WhichOneof("response") == "response_range":
                kvs = item.response_range.kvs
                result.gets.append(_kv(kvs[0]) if kvs else None)
        return result

    # ---------------------------------------------------------------- leases

    async def grant_lease(self, ttl_s: int) -> int:
        rsp = await self._call(self._lease.LeaseGrant, rpc.LeaseGrantRequest(TTL=ttl_s))
        if rsp.error:
            raise KVError(f"lease grant failed: {rsp.error}")
        return int(rsp.ID)

    async def refresh_lease(self, lease: int) -> None:
        if self._channel is None:
            raise KVUnavailableError("etcd broker is not connected")

        async def one() -> AsyncIterator[Any]:
            yield rpc.LeaseKeepAliveRequest(ID=lease)

        try:
            call = self._lease.LeaseKeepAlive(one(), timeout=self.op_timeout_s, metadata=self._metadata)
            async for rsp in call:
                if rsp.TTL <= 0:
                    raise KVError(f"lease {lease} not found (expired)")
                break
            call.cancel()
        except grpc.aio.AioRpcError as err:
            raise KVUnavailableError(f"etcd unavailable: {err.details()}") from err

    async def revoke_lease(self, lease: int) -> None:
        try:
            await self._call(self._lease.LeaseRevoke, rpc.LeaseRevokeRequest(ID=lease))
        except KVError as err:
            if "not found" not in str(err):
                raise

    # ---------------------------------------------------------------- watch

    async def watch(self, prefix: str, from_revision: int = 0) -> AsyncIterator[WatchItem]:
        """See :meth:`KVBroker.watch`; reconnects with back-off and never repeats a revision."""
        raw = prefix.encode()
        range_end = prefix_range_end(raw)
        next_rev = from_revision
        if next_rev <= 0:
            next_rev = await self._wait_revision() + 1
        backoff = 0.1
        while True:
            queue: asyncio.Queue[Any] = asyncio.Queue()
            create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=raw or b"\0", range_end=range_end, start_revision=next_rev, prev_kv=True))

            call = self._watch.Watch(_watch_requests(create, queue), metadata=self._metadata)
            try:
                async for rsp in call:
                    backoff = 0.1
                    if rsp.compact_revision:
                        snapshot, rev = await self._range(prefix)
                        yield WatchResync(snapshot, rev, f"revision {next_rev} was compacted "
                                                         f"(oldest kept: {rsp.compact_revision})")
                        next_rev = rev + 1
                        break  # re-create the watch after the snapshot
                    if rsp.canceled:
                        raise KVError(f"watch on {prefix!r} cancelled by etcd: {rsp.cancel_reason}")
                    for ev in rsp.events:
                        rev = ev.kv.mod_revision
                        if rev < next_rev:
                            continue  # already delivered before a reconnect
                        deleted = ev.type == rpc.Event.DELETE
                        yield WatchEvent(
                            EventType.DELETE if deleted else EventType.PUT,
                            ev.kv.key.decode(),
                            None if deleted else ev.kv.value,
                            ev.prev_kv.value if ev.HasField("prev_kv") and ev.prev_kv.key else None,
                            rev,
                        )
                    if rsp.events:
                        # Events of one revision arrive in one response: resume after it.
                        next_rev = rsp.events[-1].kv.mod_revision + 1
            except grpc.aio.AioRpcError as err:
                if not _retriable(err):
                    raise KVError(f"watch on {prefix!r} failed: {err.details()}") from err
                log.warning("watch on %r interrupted (%s), resuming at revision %d",
                            prefix, err.code().name, next_rev)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                call.cancel()
                queue.put_nowait(None)

    async def _wait_revision(self) -> int:
        delay = 0.1
        while True:
            try:
                return await self.revision()
            except KVUnavailableError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def healthy(self) -> bool:
        try:
            await self.revision()
            return True
        except KVError:
            return False
