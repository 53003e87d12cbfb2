"""The two descriptors: sysctls and the MTU inside a pod's network namespace.

Ownership: a sysctl carries no mark, so read-back can only look at the settings this agent
wants (the scheduler's ``correlate`` plus what the handler desires right now, which after a
restart is all it knows). The MTU is an attribute of a link that another value (ipnet's veth)
owns; the handler hands the attribute over (the veth then leaves the MTU alone) and deleting
the MTU value gives it back: the delete changes nothing, the veth's owner sets its MTU again.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from contiv_sdk import (
    Dependency,
    Descriptor,
    InvalidValueError,
    NamespaceNotFoundError,
    Origin,
    RetrievedValue,
    TransientError,
    ValueWithMetadata,
    call_in_namespace,
    find_link,
    link_property_key,
    namespace_label,
    netlink,
)
from pod_tuning.model import MTU_SPEC, SYSCTL_SPEC, PodMtu, PodSysctl

#: errno values that say the request itself is wrong: retrying cannot help.
PERMANENT_ERRNOS = frozenset({errno.EINVAL, errno.ERANGE, errno.EPERM, errno.EACCES, errno.ENOENT})

#: What the handler desires right now, key -> value (for read-back after a restart).
Expected = Callable[[], Mapping[str, BaseModel]]


def _wanted(correlate: Sequence[ValueWithMetadata], expected: Mapping[str, BaseModel],
            model: type[BaseModel]) -> dict[str, tuple[Any, Any]]:
    """key -> (value, metadata) of every value of ``model`` to read back."""
    found: dict[str, tuple[Any, Any]] = {
        k: (v, None) for k, v in expected.items() if isinstance(v, model)}
    for item in correlate:
        if isinstance(item.value, model):
            found[item.key] = (item.value, item.metadata)
    return found


class _PodValueDescriptor(Descriptor[Any]):
    """What both share: the dependency on the pod interface, and which errors are final."""

    def __init__(self, expected: Expected) -> None:
        self.expected = expected

    def dependencies(self, key: str, value: Any) -> Sequence[Dependency]:
        # The derived property of ipnet's veth end in the pod: exists once the pod is wired.
        return [Dependency("pod interface", key=link_property_key(value.namespace, value.ifname))]

    def is_retriable(self, error: Exception) -> bool:
        if isinstance(error, NamespaceNotFoundError):
            return False  # the pod is gone; its DEL removes the value
        if isinstance(error, OSError) and error.errno in PERMANENT_ERRNOS:
            return False
        return super().is_retriable(error)


def _sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


async def read_sysctl(namespace: str, name: str) -> str:
    def body() -> str:
        with open(_sysctl_path(name)) as handle:
            return handle.read().strip()

    return await call_in_namespace(namespace, body)


async def write_sysctl(namespace: str, name: str, value: str) -> None:
    def body() -> None:
        with open(_sysctl_path(name), "w") as handle:
            handle.write(value)

    await call_in_namespace(namespace, body)


class PodSysctlDescriptor(_PodValueDescriptor):
    """``config/pod-tuning/v1/sysctl/<netns>/<name>``; metadata: the value found before."""

    name = "pod-tuning-sysctl"
    spec = SYSCTL_SPEC
    model = PodSysctl
    with_metadata = True

    def __init__(self, expected: Expected, allowed: Sequence[str] = ("net.",)) -> None:
        super().__init__(expected)
        self.allowed = tuple(allowed)

    def value_name(self, value: PodSysctl) -> str:
        return f"{namespace_label(value.namespace)}/{value.name}"

    def validate(self, key: str, value: PodSysctl) -> None:
        if not value.name.startswith(self.allowed):
            raise InvalidValueError(key, f"sysctl {value.name} is not allowed "
                                         f"(allowed: {', '.join(self.allowed)})")

    def update_needs_recreate(self, key: str, old: PodSysctl, new: PodSysctl) -> bool:
        return (old.namespace, old.name) != (new.namespace, new.name)

    async def create(self, key: str, value: PodSysctl) -> str:
        previous = await read_sysctl(value.namespace, value.name)
        await write_sysctl(value.namespace, value.name, value.value)
        return previous

    async def update(self, key: str, old: PodSysctl, new: PodSysctl, metadata: Any) -> Any:
        await write_sysctl(new.namespace, new.name, new.value)
        return metadata

    async def delete(self, key: str, value: PodSysctl, metadata: Any) -> None:
        if not isinstance(metadata, str):
            return  # nothing known to restore (applied before this agent started)
        try:
            await write_sysctl(value.namespace, value.name, metadata)
        except (NamespaceNotFoundError, FileNotFoundError):
            return  # the pod is gone, and its settings with it

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        result = []
        for key, (value, metadata) in _wanted(correlate, self.expected(), PodSysctl).items():
            try:
                current = await read_sysctl(value.namespace, value.name)
            except (NamespaceNotFoundError, FileNotFoundError):
                continue
            found = value.model_copy(update={"value": current})
            result.append(RetrievedValue(key, found, metadata, Origin.FROM_NB))
        return result


class PodMtuDescriptor(_PodValueDescriptor):
    """``config/pod-tuning/v1/mtu/<netns>/<ifname>``: the pod interface's MTU."""

    name = "pod-tuning-mtu"
    spec = MTU_SPEC
    model = PodMtu
    # Read the veth first: our read-back only makes sense for links that exist.
    retrieve_after = ("linux-veth",)

    def value_name(self, value: PodMtu) -> str:
        return f"{namespace_label(value.namespace)}/{value.ifname}"

    def update_needs_recreate(self, key: str, old: PodMtu, new: PodMtu) -> bool:
        return (old.namespace, old.ifname) != (new.namespace, new.ifname)

    async def create(self, key: str, value: PodMtu) -> None:
        async with netlink(value.namespace) as ipr:
            link = await find_link(ipr, value.ifname)
            if link is None:
                raise TransientError(f"interface {value.ifname} not found in {value.namespace}")
            await ipr.link("set", index=link.index, mtu=value.mtu)

    async def update(self, key: str, old: PodMtu, new: PodMtu, metadata: Any) -> None:
        await self.create(key, new)

    async def delete(self, key: str, value: PodMtu, metadata: Any) -> None:
        # The link belongs to the veth's owner, which sets its own MTU again when the handler
        # gives the attribute back (and the link goes with the pod anyway).
        return None

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        result = []
        for key, (value, _) in _wanted(correlate, self.expected(), PodMtu).items():
            try:
                async with netlink(value.namespace) as ipr:
                    link = await find_link(ipr, value.ifname)
            except NamespaceNotFoundError:
                continue
            if link is not None:
                found = value.model_copy(update={"mtu": link.mtu})
                result.append(RetrievedValue(key, found, None, Origin.FROM_NB))
        return result
