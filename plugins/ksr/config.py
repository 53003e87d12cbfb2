"""Settings of the KSR plugin (the ``ksr:`` section of the app YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from core.plugin import PluginConfig


class KSRConfig(PluginConfig):
    """What KSR reflects, from where, and how it shares the work with other replicas."""

    source: Literal["api", "dir"] = "api"
    """Where Kubernetes state comes from: the API server (``api``) or a YAML directory (``dir``)."""

    source_dir: Path | None = None
    """Directory of YAML/JSON manifests (multi-document files); required with ``source: dir``."""

    dir_poll_interval_s: float = Field(default=1.0, gt=0)
    """How often the manifest directory is checked for changed files."""

    kubeconfig: Path | None = None
    """Kubeconfig file for ``source: api``; unset: in-cluster config, then ``~/.kube/config``."""

    endpoints_source: Literal["endpointslice", "endpoints"] = "endpointslice"
    """Reflect ``discovery.k8s.io/v1`` EndpointSlices (default) or the legacy core/v1 Endpoints."""

    watch_timeout_s: int = Field(default=300, ge=1)
    """Server-side timeout of one watch request; the watch is re-opened from the last version."""

    list_page_size: int = Field(default=500, ge=1)
    """Items per page when listing (``limit``/``continue``)."""

    backoff_initial_s: float = Field(default=0.1, gt=0)
    """First retry delay after a failed list/watch or resync; doubles on each failure."""

    backoff_max_s: float = Field(default=1.0, gt=0)
    """Cap of the retry delay."""

    txn_max_ops: int = Field(default=128, ge=1)
    """Most operations in one etcd transaction (etcd's ``--max-txn-ops`` default is 128)."""

    leader_election: bool = True
    """Elect one writer among the replicas through an etcd lease; off: always write."""

    leader_ttl_s: int = Field(default=10, ge=1)
    """TTL of the leader lease: a dead leader is replaced within about this time."""

    instance_id: str = ""
    """Identity in the election (default: hostname and process ID)."""

    monitor_interval_s: float = Field(default=1.0, gt=0)
    """How often the datastore health and data loss (revision going backwards) are checked."""

    stats_interval_s: float = Field(default=10.0, gt=0)
    """How often statistics are written to ``status/gauges``."""

    pod_annotation_prefixes: list[str] = Field(default_factory=lambda: ["contivpp.io"])
    """Pod annotations whose key starts with one of these are reflected (Contiv reflects only
    ``contivpp.io``); add a plugin's own prefix (e.g. ``tuning.example.com``) for it to see its
    annotations, or ``""`` for all of them."""

    @model_validator(mode="after")
    def _dir_needs_path(self) -> KSRConfig:
        if self.source == "dir" and self.source_dir is None:
            raise ValueError("source_dir is required when source is 'dir'")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        return self
