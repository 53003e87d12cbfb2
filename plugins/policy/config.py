"""Settings of the policy plugin (YAML section ``policy``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.plugin import PluginConfig


class PolicyConfig(PluginConfig):
    """Where and how NetworkPolicies are enforced."""

    renderer: Literal["auto", "nftables", "vpp-acl"] = "auto"
    """The dataplane renderer; ``nftables`` filters the node's forward path (Linux dataplane);
    ``vpp-acl``: VPP ACLs on the pods' VPP interfaces (docs/vpp.md); ``auto``: the one of
    ``ipnet.dataplane`` (``vpp-acl`` on VPP, else ``nftables``)."""

    namespace: str = ""
    """Network namespace (name or absolute path) holding the policy table: the node's, where pod
    traffic is forwarded; empty: the agent's own (normal operation)."""

    table: str = Field("contiv-policy", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Name of the agent-owned nftables table (family ``inet``); nothing else is touched."""

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value and "/" in value and not value.startswith("/"):
            raise ValueError(f"namespace {value!r} must be a name or an absolute path")
        return value
