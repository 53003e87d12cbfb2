"""Settings of the VPP dataplane plugin."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.plugin import PluginConfig

#: Where VPP installs its API definitions on a node.
SYSTEM_API_DIR = Path("/usr/share/vpp/api")


def default_api_dir() -> str:
    """``/usr/share/vpp/api`` when VPP is installed, else ``../shared/vpp-api`` next to the repo."""
    if SYSTEM_API_DIR.is_dir():
        return str(SYSTEM_API_DIR)
    return str(Path(__file__).resolve().parents[2].parent / "shared" / "vpp-api")


class VPPConfig(PluginConfig):
    """Settings of the ``vpp`` plugin (the connection to VPP's binary API)."""

    api_socket: str = "/run/vpp/api.sock"
    """VPP's binary-API unix socket (``socksvr { socket-name ... }`` in startup.conf)."""

    api_dir: str = Field(default_factory=default_api_dir)
    """Directory tree of VPP's ``*.api.json`` message definitions (the running VPP's version)."""

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
