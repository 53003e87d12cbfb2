"""What every Linux descriptor shares: retriable errors and the namespaces read-back scans."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import ClassVar, TypeVar

from pydantic import BaseModel
from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from plugins.kvscheduler.api import Dependency, Descriptor, RetrievedValue, ValueWithMetadata
from plugins.linux.links import LinkInfo, LinkMissingError, on_link
from plugins.linux.models import OnLinkValue, link_property_key
from plugins.linux.models import value_name as model_value_name
from plugins.linux.netns import NamespaceNotFoundError, NetlinkPool, namespace_exists

#: An operation on one link: gets the namespace's netlink handle and the link.
LinkOp = Callable[[AsyncIPRoute, LinkInfo], Awaitable[None]]

#: errno values that mean "the input is wrong", never worth a retry.
_PERMANENT_ERRNOS = frozenset({errno.EINVAL, errno.ERANGE, errno.EOPNOTSUPP, errno.EPERM})


async def tolerating(request: Awaitable[object], code: int) -> None:
    """Await a netlink request for which the errno ``code`` means the wanted state already holds
    (EEXIST on an add, ENOENT/ESRCH/EADDRNOTAVAIL on a delete)."""
    try:
        await request
    except NetlinkError as exc:
        if exc.code != code:
            raise


V = TypeVar("V", bound=BaseModel)
L = TypeVar("L", bound=OnLinkValue)


class LinuxDescriptor(Descriptor[V]):
    """Base of the Linux descriptors, generic in the value type (``LinuxDescriptor[Route]``).

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


class OnLinkDescriptor(LinuxDescriptor[L]):
    """Values that live on one of our links (addresses, neighbours, FDB entries).

    Keyed ``<ns>/<ifname>/<item>``; each waits for its link (the link's derived property).
    Subclasses give :meth:`item_name` and do their netlink work through :meth:`apply_on_link`
    (a missing link is a retriable error: it may be created next) and :meth:`remove_on_link`
    (a vanished namespace or link means there is nothing left to remove).
    """

    retrieve_after: ClassVar[tuple[str, ...]] = ("linux-veth", "linux-vxlan")

    def value_name(self, value: L) -> str:
        return model_value_name(value)

    def dependencies(self, key: str, value: L) -> Sequence[Dependency]:
        # The kernel drops a link's addresses, neighbours and FDB entries with the link.
        return [Dependency("interface", key=link_property_key(value.namespace, value.ifname),
                           removed_with=True)]

    def missing_link_message(self, value: L, error: LinkMissingError) -> str:
        return str(error)

    async def apply_on_link(self, value: L, op: LinkOp) -> None:
        async with self.pool.connect(value.namespace) as ipr:
            try:
                await on_link(self.pool, ipr, value.ifname, lambda link: op(ipr, link))
            except LinkMissingError as exc:
                raise OSError(self.missing_link_message(value, exc)) from None

    async def remove_on_link(self, value: L, op: LinkOp) -> None:
        try:
            async with self.pool.connect(value.namespace) as ipr:
                await on_link(self.pool, ipr, value.ifname, lambda link: op(ipr, link))
        except (NamespaceNotFoundError, LinkMissingError):
            return


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
