"""Per-namespace ``net.*`` sysctls; the value found before us is restored on delete.

Only ``net.*`` keys are accepted (the model enforces it) because only those are per network
namespace: anything else would change the whole host.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from plugins.kvscheduler.api import Origin, RetrievedValue, ValueWithMetadata
from plugins.linux.descriptors.base import LinuxDescriptor
from plugins.linux.models import SYSCTL_SPEC, Sysctl
from plugins.linux.models import value_name as model_value_name
from plugins.linux.netns import (
    NamespaceNotFoundError,
    NetlinkPool,
    call_in_namespace,
)

#: Where the kernel's sysctls are. A non-privileged container has its /proc/sys read-only: the
#: chart mounts the host's /proc/sys/net at /host/proc/sys/net instead (``linux.sysctl_dir``).
#: A ``net.*`` file opened there still shows the opening thread's network namespace.
PROC_SYS = "/proc/sys"


def _path(name: str, root: str = PROC_SYS) -> str:
    return root.rstrip("/") + "/" + name.replace(".", "/")


async def _read(ns: str, name: str, root: str = PROC_SYS) -> str:
    def body() -> str:
        with open(_path(name, root)) as handle:
            return handle.read().strip()

    return await call_in_namespace(ns, body)


async def _write(ns: str, name: str, value: str, root: str = PROC_SYS) -> None:
    def body() -> None:
        with open(_path(name, root), "w") as handle:
            handle.write(value)

    await call_in_namespace(ns, body)


class SysctlDescriptor(LinuxDescriptor[Sysctl]):
    """``config/linux/v1/sysctl/<ns>/<name>``; metadata: the value found before creation."""

    name = "linux-sysctl"
    spec = SYSCTL_SPEC
    model = Sysctl
    with_metadata = True

    def __init__(self, extra_namespaces: Iterable[str] = (), pool: NetlinkPool | None = None,
                 root: str = PROC_SYS) -> None:
        super().__init__(extra_namespaces, pool)
        self.root = root

    def value_name(self, value: Sysctl) -> str:
        return model_value_name(value)

    def update_needs_recreate(self, key: str, old: Sysctl, new: Sysctl) -> bool:
        return (old.namespace, old.name) != (new.namespace, new.name)

    async def create(self, key: str, value: Sysctl) -> str:
        previous = await _read(value.namespace, value.name, self.root)
        await _write(value.namespace, value.name, value.value, self.root)
        return previous

    async def update(self, key: str, old: Sysctl, new: Sysctl, metadata: Any) -> Any:
        await _write(new.namespace, new.name, new.value, self.root)
        return metadata

    async def delete(self, key: str, value: Sysctl, metadata: Any) -> None:
        if not isinstance(metadata, str):
            return  # nothing known to restore (e.g. applied by an earlier agent run)
        try:
            await _write(value.namespace, value.name, metadata, self.root)
        except (NamespaceNotFoundError, FileNotFoundError):
            return

    async def retrieve(self, correlate: Sequence[ValueWithMetadata]) -> list[RetrievedValue]:
        # A sysctl carries no mark: only the settings we believe applied are read back.
        result = []
        for item in correlate:
            if not isinstance(item.value, Sysctl):
                continue
            try:
                current = await _read(item.value.namespace, item.value.name, self.root)
            except (NamespaceNotFoundError, FileNotFoundError):
                continue
            value = item.value.model_copy(update={"value": current})
            result.append(RetrievedValue(item.key, value, item.metadata, Origin.FROM_NB))
        return result
