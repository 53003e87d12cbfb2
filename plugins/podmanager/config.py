"""Settings of the pod manager plugin."""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import Field, model_validator

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

    staged_conflist: str = ""
    """The network configuration list that ``contiv-cni-install`` staged (its
    ``--staged-conf``, e.g. ``/var/lib/contiv/cni/10-contiv.conflist``). When set, the agent
    owns the conflist's presence in ``cni_conf_dir``: it puts it there (same file name, atomic
    rename) once its CNI server is serving, and removes it on a graceful stop when
    ``remove_conf_on_stop``. Empty (the default): the conf dir is left alone."""

    cni_conf_dir: str = "/etc/cni/net.d"
    """The container runtime's CNI conf dir, as the agent sees it (the host's directory
    mounted into its container)."""

    remove_conf_on_stop: bool = True
    """On a graceful stop (SIGTERM) remove the conflist the agent put, so kubelet reports the
    node's network not ready instead of failing every pod while no agent serves. A crash leaves
    it (pods get "try again later" until the agent is back)."""

    @model_validator(mode="after")
    def _check_conflist_paths(self) -> PodManagerConfig:
        if not self.staged_conflist:
            return self
        staged = PurePosixPath(self.staged_conflist)
        conf_dir = PurePosixPath(self.cni_conf_dir)
        if not staged.is_absolute():
            raise ValueError(f"staged_conflist must be an absolute path, got {self.staged_conflist!r}")
        if not conf_dir.is_absolute():
            raise ValueError(f"cni_conf_dir must be an absolute path, got {self.cni_conf_dir!r}")
        if staged.suffix not in (".conflist", ".conf"):
            raise ValueError(
                f"staged_conflist {self.staged_conflist!r} must end in .conflist (the name it "
                "gets in cni_conf_dir, which runtimes only read with that suffix)"
            )
        if staged.parent == conf_dir:
            raise ValueError(
                f"staged_conflist {self.staged_conflist!r} is inside cni_conf_dir: the runtime "
                "would read it before the agent serves; stage it elsewhere (e.g. /var/lib/contiv/cni)"
            )
        return self
