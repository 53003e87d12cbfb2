"""What every Linux descriptor shares: retriable errors and the namespaces read-back scans."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from plugins.kvscheduler.api import Descriptor, RetrievedValue, ValueWithMetadata
from plugins.linux.netns import NamespaceNotFoundError, NetlinkPool, namespace_exists

#: errno values that mean "the input is wrong", never worth a retry.
_PERMANENT_ERRNOS = frozenset({errno.EINVAL, errno.ERANGE, errno.EOPNOTSUPP, errno.EPERM})


class LinuxDescriptor(Descriptor[Any]):
    """Base of the Linux descriptors.

    ``extra_namespaces`` are scanned by ``retrieve`` in addition to the agent's own namespace
    and the namespaces of the values the scheduler believes applied. ``pool`` hands out the
    netlink handles (shared by the descriptors of one plugin; by default nothing is kept open).
    """

    def __init__(
        self, extra_namespaces: Iterable[str] = (), pool: NetlinkPool | None = None
    ) -> None:
        self.extra_namespaces = tuple(extra_namespaces)
        self.pool = pool if pool is not None else NetlinkPool()

    def scan_namespaces(self, correlate: Sequence[ValueWithMetadata]) -> list[str]:
        found: dict[str, None] = {"": None}
        for ns in self.extra_namespaces:
            found[ns] = None
        for item in correlate:
            for ns in namespaces_of(item.value):
                found[ns] = None
        return [ns for ns in found if namespace_exists(ns)]

    async def for_each_namespace(
        self,
        correlate: Sequence[ValueWithMetadata],
        read: Callable[[str, AsyncIPRoute], Awaitable[list[RetrievedValue]]],
    ) -> list[RetrievedValue]:
        """Run ``read`` in every namespace to scan, concurrently; vanished ones are skipped."""

        async def one(ns: str) -> list[RetrievedValue]:
            try:
                async with self.pool.connect(ns) as ipr:
                    return await read(ns, ipr)
            except NamespaceNotFoundError:
                return []

        parts = await asyncio.gather(*(one(ns) for ns in self.scan_namespaces(correlate)))
        return [item for part in parts for item in part]

    def is_retriable(self, error: Exception) -> bool:
        if isinstance(error, NamespaceNotFoundError):
            # A vanished namespace does not come back; a missing one is the caller's mistake.
            return False
        if isinstance(error, OSError) and error.errno in _PERMANENT_ERRNOS:
            return False
        if isinstance(error, NetlinkError):
            return error.code not in _PERMANENT_ERRNOS
        return super().is_retriable(error)


def namespaces_of(value: BaseModel) -> list[str]:
    """Every namespace a value lives in (both ends for a veth pair)."""
    result = []
    ns = getattr(value, "namespace", None)
    if isinstance(ns, str):
        result.append(ns)
    for end in ("end1", "end2"):
        sub = getattr(value, end, None)
        if sub is not None:
            result.append(str(sub.namespace))
    return result
