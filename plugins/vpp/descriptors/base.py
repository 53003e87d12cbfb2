"""What every VPP descriptor shares: the connection, the indexes, retry policy, name lookups."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from plugins.kvscheduler.api import Descriptor, TransientError
from plugins.vpp.errors import VPPCallError, VPPNotFoundError
from plugins.vpp.index import Indexes

V = TypeVar("V", bound=BaseModel)

#: A vpp-papi ``label_stack`` has exactly 16 entries or the message cannot be encoded.
EMPTY_LABEL_STACK: list[dict[str, int]] = [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0}] * 16


class VPPApi(Protocol):
    """The part of :class:`plugins.vpp.connection.VPPConnection` descriptors use."""

    async def call(self, message: str, **kwargs: Any) -> Any: ...

    async def dump(self, message: str, **kwargs: Any) -> list[Any]: ...


class VPPDescriptor(Descriptor[V]):
    """Base of the VPP descriptors."""

    def __init__(self, api: VPPApi, indexes: Indexes) -> None:
        self.api = api
        self.indexes = indexes

    def sw_if_index(self, name: str) -> int:
        index = self.indexes.interfaces.index(name)
        if index is None:
            raise VPPNotFoundError(f"VPP interface {name!r} is not known (not created yet?)")
        return index

    def is_retriable(self, error: Exception) -> bool:
        if isinstance(error, VPPCallError):
            return error.retriable
        return isinstance(error, (TransientError, OSError, TimeoutError))
