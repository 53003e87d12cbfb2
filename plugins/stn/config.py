"""Settings of the STN daemon plugin (YAML section ``stn`` of contiv-stn)."""

from __future__ import annotations

from pydantic import Field, field_validator

from core.plugin import PluginConfig


def _namespace_ref(value: str) -> str:
    if value and "/" in value and not value.startswith("/"):
        raise ValueError(f"namespace {value!r} must be a name (ip netns) or an absolute path")
    return value


class WatchdogConfig(PluginConfig):
    """When contiv-stn gives a stolen NIC back by itself (section ``stn.watchdog``)."""

    enabled: bool = True
    """Watch the dataplane while a NIC is stolen and restore the NIC when it is gone."""

    grace_s: float = Field(default=30.0, ge=0)
    """Seconds after a steal (or after the daemon starts with a stolen NIC) before watching
    starts: the dataplane needs time to come up (Contiv: 30 s)."""

    host_interface: str = Field(default="vpp1", min_length=1, max_length=15)
    """Linux name of the dataplane's host-side interface (the host interconnect)."""

    host_namespace: str = ""
    """Network namespace of ``host_interface``; "" = the one of the stolen NIC (``stn.namespace``)."""

    down_timeout_s: float = Field(default=3.0, gt=0)
    """The host interface may be missing or down this long before the NIC is restored."""

    agent_readiness_url: str = ""
    """The agent's readiness URL (e.g. ``http://127.0.0.1:9999/readiness``); "" = not watched."""

    agent_timeout_s: float = Field(default=30.0, gt=0)
    """The agent may be unready (or unreachable) this long before the NIC is restored."""

    check_interval_s: float = Field(default=1.0, gt=0)
    """Period of the netlink and readiness checks."""

    restore_retries: int = Field(default=20, ge=1)
    """Attempts to restore the NIC before giving up (and logging the record's file)."""

    restore_retry_interval_s: float = Field(default=0.2, gt=0)
    """Pause between restore attempts."""

    _ns = field_validator("host_namespace")(_namespace_ref)


class STNConfig(PluginConfig):
    """The STN daemon: gRPC on a unix socket, the record file, the watchdog."""

    socket_path: str = Field(default="/var/run/contiv/stn.sock", min_length=1, max_length=107)
    """Unix socket of the ``STN`` gRPC service, created owner-only (0600); its directory is
    created (0700) when missing."""

    state_file: str = Field(default="/var/lib/contiv/stn.json", min_length=1)
    """Where the record of stolen NICs is kept (written atomically before any link is touched),
    so a daemon crash between steal and release never loses the node's addresses."""

    namespace: str = ""
    """Network namespace of the NICs (name under /var/run/netns or a path); "" = the daemon's."""

    max_stolen: int = Field(default=1, ge=1)
    """How many links may be stolen at once."""

    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    """When to restore a stolen NIC without being asked."""

    _ns = field_validator("namespace")(_namespace_ref)
