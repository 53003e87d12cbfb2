"""Settings of the VPP dataplane plugin."""

from __future__ import annotations

from pydantic import Field, field_validator

from core.plugin import PluginConfig
from plugins.vpp.apidefs import check_api_dir, default_api_dir


class VPPConfig(PluginConfig):
    """Settings of the ``vpp`` plugin (the connection to VPP's binary API)."""

    api_socket: str = "/run/vpp/api.sock"
    """VPP's binary-API unix socket (``socksvr { socket-name ... }`` in startup.conf)."""

    api_dir: str = ""
    """Directory tree of VPP's ``*.api.json`` message definitions (the running VPP's version).
    Empty: ``/usr/share/vpp/api`` when VPP is installed there, else the definitions shipped in
    the package (``plugins/vpp/api``, VPP v26.10-rc0)."""

    client_name: str = "contiv-agent"
    """Name this client registers with VPP (``show api clients``)."""

    reply_timeout_s: float = Field(default=5.0, gt=0)
    """How long one API call may wait for its reply before the connection counts as lost."""

    connect_timeout_s: float = Field(default=10.0, gt=0)
    """How long ``after_init`` waits for VPP to accept the first connection (keep it below the
    agent's start timeout); then the agent fails to start, naming the socket."""

    health_interval_s: float = Field(default=1.0, gt=0)
    """Period of the ``control_ping`` probe that detects a lost or restarted VPP."""

    reconnect_interval_s: float = Field(default=0.5, gt=0)
    """Pause between reconnection attempts while VPP is away."""

    @field_validator("api_dir")
    @classmethod
    def _api_dir_has_definitions(cls, value: str) -> str:
        return check_api_dir(value) if value else value

    def resolved_api_dir(self) -> str:
        """``api_dir``, or the default tree when it is empty."""
        return self.api_dir or default_api_dir()
