"""Settings of the Linux dataplane plugin (YAML section ``linux``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.plugin import PluginConfig
from plugins.linux.netns import validate_namespace_ref


class LinuxConfig(PluginConfig):
    """How the Linux descriptors find what they manage."""

    scan_namespaces: list[str] = Field(default_factory=list)
    """Namespaces (names or absolute paths) that read-back scans for our objects besides the
    agent's own namespace and those of values already applied; e.g. the node namespace when
    the agent configures a namespace other than its own."""

    nft_backend: Literal["lib", "cli"] = "lib"
    """How agent-owned nftables tables are written and read: ``lib`` = libnftables in-process
    (JSON read-back), ``cli`` = the ``nft`` binary (``nft -f`` batches). See docs/services.md."""

    sysctl_dir: str = "/proc/sys"
    """Where ``net.*`` sysctls are read and written: ``/proc/sys``, or a mount of the host's
    ``/proc/sys/net`` under ``<dir>/net`` where the container's own /proc/sys is read-only (the
    chart: ``/host/proc/sys``, without ``privileged``). A file opened there still shows the
    network namespace of the thread that opens it."""

    @field_validator("sysctl_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"sysctl_dir {value!r} must be an absolute path")
        return value

    @field_validator("scan_namespaces")
    @classmethod
    def _refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            reason = validate_namespace_ref(ref)
            if reason:
                raise ValueError(reason)
        return value
