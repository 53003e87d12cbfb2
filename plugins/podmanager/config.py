"""Settings of the pod manager plugin."""

from __future__ import annotations

from pydantic import Field

from core.plugin import PluginConfig


class PodManagerConfig(PluginConfig):
    """The ``podmanager`` section of the agent's YAML."""

    socket_path: str = Field(default="/var/run/contiv/cni.sock", min_length=1)
    """Unix socket of the ``RemoteCNI`` gRPC service (the CNI config's ``grpcServer``). Created
    owner-only (0600); its directory is created (0700) when missing."""

    records_file: str = Field(default="/var/lib/contiv/pods.json", min_length=1)
    """Local, crash-safe copy of the pod records (written atomically before every reply), read
    at start so restart recovery works without etcd and without a container engine."""

    records_fsync: bool = False
    """Also fsync the records file (and its directory) on every change. The atomic rename alone
    survives agent crashes; fsync adds power-loss safety, which buys little here because pod
    sandboxes do not survive a node reboot either (kubelet re-creates them). Costs a few ms per
    CNI request."""

    event_timeout_s: float = Field(default=60.0, gt=0)
    """How long a CNI request waits for its AddPod/DeletePod event before failing with
    "try again later"."""

    etcd_timeout_s: float = Field(default=3.0, gt=0)
    """Timeout of each etcd read or write of the pod records; a slow or lost etcd never blocks
    a CNI request longer than this (the records are re-synchronised in the background)."""

    etcd_retry_interval_s: float = Field(default=2.0, gt=0)
    """Delay between attempts to bring etcd's copy of the records up to date after a failure."""
