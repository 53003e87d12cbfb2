"""The KV broker: one async interface over etcd and an in-process memory store.

Keys are strings, values are bytes on the wire; :class:`KVBroker` offers typed helpers that
store pydantic models as JSON. Every write returns the store revision it produced. A broker may
be a prefixed view of another one (:meth:`KVBroker.prefixed`): keys given to and returned by a
view are relative to its prefix.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class KVError(Exception):
    """A datastore operation failed."""


class KVUnavailableError(KVError):
    """The datastore cannot be reached (retriable: the operation may succeed later)."""


class CompactedError(KVError):
    """The requested watch revision was compacted; the watcher must resync from a full list."""

    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(f"revision {requested} is compacted (oldest kept: {compact_revision})")
        self.requested = requested
        self.compact_revision = compact_revision


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A stored key with its value and the revision that last modified it."""

    key: str
    value: bytes
    mod_revision: int
    create_revision: int = 0
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by a watch. ``prev_value`` is None when the key did not exist before."""

    type: EventType
    key: str
    value: bytes | None
    prev_value: bytes | None
    revision: int


@dataclass(frozen=True, slots=True)
class WatchResync:
    """The watch could not deliver every change (history compacted, or the view was reset).

    The consumer must re-list the prefix: ``snapshot`` holds the current content and
    ``revision`` the store revision it was read at; the watch continues after that revision.
    """

    snapshot: Sequence[KeyValue]
    revision: int
    reason: str


WatchItem = WatchEvent | WatchResync


class Op:
    """Operations of a multi-op transaction (:meth:`KVBroker.txn`)."""

    @dataclass(frozen=True, slots=True)
    class Put:
        key: str
        value: bytes
        lease: int = 0

    @dataclass(frozen=True, slots=True)
    class Delete:
        key: str
        prefix: bool = False

    @dataclass(frozen=True, slots=True)
    class Get:
        key: str


TxnOp = Op.Put | Op.Delete | Op.Get


@dataclass(frozen=True, slots=True)
class Compare:
    """A transaction guard on one key.

    ``target`` is ``"value"``, ``"mod_revision"``, ``"create_revision"`` or ``"exists"``; for
    ``"exists"`` the expected value is a bool. Only equality is compared.
    """

    key: str
    target: str
    expected: bytes | int | bool


@dataclass(slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    #: For each Get of the executed branch, the key-value read (None when absent).
    gets: list[KeyValue | None] = field(default_factory=list)


class KVBroker(ABC):
    """Async key-value operations; implemented by the etcd and memory backends and by views."""

    @abstractmethod
    async def get(self, key: str) -> KeyValue | None:
        """The key's value, or None."""

    @abstractmethod
    async def list(self, prefix: str, keys_only: bool = False) -> list[KeyValue]:
        """Every key under ``prefix`` in key order (values empty when ``keys_only``)."""

    @abstractmethod
    async def revision(self) -> int:
        """The store's current revision."""

    @abstractmethod
    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Store ``value``; with ``lease`` the key is removed when the lease expires."""

    @abstractmethod
    async def delete(self, key: str, prefix: bool = False) -> int:
        """Remove the key (or everything under it with ``prefix``); returns how many went."""

    @abstractmethod
    async def put_if_absent(self, key: str, value: bytes, lease: int = 0) -> bool:
        """Store only if the key does not exist; True when this call created it."""

    @abstractmethod
    async def compare_and_put(
        self, key: str, value: bytes, expected_mod_revision: int, lease: int = 0
    ) -> bool:
        """Store only if the key's mod revision equals ``expected_mod_revision`` (0: absent)."""

    @abstractmethod
    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[TxnOp],
        failure: Sequence[TxnOp] = (),
    ) -> TxnResult:
        """Atomically run ``success`` if every comparison holds, else ``failure``."""

    @abstractmethod
    async def grant_lease(self, ttl_s: int) -> int:
        """Create a lease of ``ttl_s`` seconds and return its ID."""

    @abstractmethod
    async def refresh_lease(self, lease: int) -> None:
        """Keep a lease alive for another TTL."""

    @abstractmethod
    async def revoke_lease(self, lease: int) -> None:
        """Revoke a lease, removing every key attached to it."""

    @abstractmethod
    def watch(self, prefix: str, from_revision: int = 0) -> AsyncIterator[WatchItem]:
        """Changes under ``prefix`` after ``from_revision`` (0: from now on).

        The iterator survives reconnects of the backend: it resumes after the last revision it
        delivered, so no event is lost or repeated. When history needed to resume was compacted
        it yields a :class:`WatchResync` with a fresh snapshot and carries on from there.
        Closing the iterator (``aclose``) cancels the watch.
        """

    @abstractmethod
    async def healthy(self) -> bool:
        """True when the store answers."""

    async def close(self) -> None:  # noqa: B027 - optional for backends holding nothing
        """Release connections."""

    def prefixed(self, prefix: str) -> KVBroker:
        """A view in which every key is relative to ``prefix``."""
        from core.kvdb.prefixed import PrefixedBroker

        return PrefixedBroker(self, prefix)

    # Typed helpers: pydantic models as JSON.
    async def get_model(self, key: str, model: type[M]) -> M | None:
        kv = await self.get(key)
        return None if kv is None else model.model_validate_json(kv.value)

    async def put_model(self, key: str, value: BaseModel, lease: int = 0) -> int:
        return await self.put(key, encode_model(value), lease=lease)

    async def list_models(self, prefix: str, model: type[M]) -> dict[str, M]:
        return {kv.key: model.model_validate_json(kv.value) for kv in await self.list(prefix)}


def encode_model(value: BaseModel) -> bytes:
    """The JSON bytes stored for a model (fields at their defaults included, None excluded)."""
    return value.model_dump_json(exclude_none=True).encode()


def agent_prefix(label: str) -> str:
    """The key prefix of one agent or app, Ligato's ``/vnf-agent/<label>/``."""
    return f"/vnf-agent/{label}/"
