"""Settings of the ipnet plugin (YAML section ``ipnet``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from core.plugin import PluginConfig
from plugins.ipnet.intent import DEFAULT_MTU, DEFAULT_VNI


class IPNetConfig(PluginConfig):
    """Pod and node connectivity."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)

    dataplane: Literal["linux", "vpp"] = "linux"
    """Which renderer realises the intent: ``linux`` (kernel veth + routes, the default) or
    ``vpp``."""

    nooverlay: bool = False
    """Reach other nodes' pods with plain routes via their node IPs instead of VXLAN (the
    nodes must share an L2 segment)."""

    vni: int = Field(DEFAULT_VNI, ge=1, lt=1 << 24)
    """VXLAN network identifier of the node mesh."""

    mtu: int = Field(DEFAULT_MTU, ge=576, le=65535)
    """MTU of pod interfaces and of the VXLAN device (leave room for 50 bytes of VXLAN)."""

    node_namespace: str = ""
    """Network namespace (name or absolute path) that plays the node for the ``linux``
    renderer; empty: the agent's own namespace (normal operation)."""

    @field_validator("node_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value and "/" in value and not value.startswith("/"):
            raise ValueError(f"node_namespace {value!r} must be a name or an absolute path")
        return value
