"""The service label: who this process is (the node name for an agent), Ligato's servicelabel."""

from __future__ import annotations

import socket
from typing import Protocol

from pydantic import Field

from core.kvdb.api import agent_prefix
from core.plugin import Plugin, PluginConfig


class ServiceLabelAPI(Protocol):
    """Who this process is, as other plugins use it (the one service-label type)."""

    @property
    def label(self) -> str:
        """This agent's label: the Kubernetes node name for an agent."""
        ...


class ServiceLabelConfig(PluginConfig):
    label: str = Field(default_factory=socket.gethostname, min_length=1)
    """This agent's label: the Kubernetes node name for an agent (``--node-name``/``NODE_NAME``)."""


class ServiceLabelPlugin(Plugin):
    """Who this process is: the node name for an agent, and its ``/vnf-agent/<label>/`` prefix.

    Implements :class:`ServiceLabelAPI`.
    """

    name = "service-label"
    Config = ServiceLabelConfig
    config: ServiceLabelConfig

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def agent_prefix(self) -> str:
        """``/vnf-agent/<label>/``: this agent's own key prefix."""
        return agent_prefix(self.config.label)
