"""The lab's state file: what it made, so that any later command (and ``down`` after a crash)
knows the nodes, pods and processes."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, PrivateAttr

from apps.lab.errors import LabError

DEFAULT_STATE_ROOT = Path("/run/contiv-lab")
UNDERLAY_PREFIX = "192.168.16."
ETCD_HOST = UNDERLAY_PREFIX + "254"


def etcd_member_host(index: int) -> str:
    """The underlay address of etcd member ``m<index>``: .254 for ``m1``, .253 for ``m2``, ..."""
    return ETCD_HOST if index == 1 else f"{UNDERLAY_PREFIX}{255 - index}"


class NodeState(BaseModel):
    name: str
    index: int
    netns: str
    ip: str
    agent_pid: int | None = None


class PodState(BaseModel):
    name: str
    namespace: str
    node: str
    netns: str
    container_id: str
    ip: str = ""
    echo_pid: int | None = None
    ports: list[str] = []  # the echo workload's port specs (apps.lab.pods.container_ports)


class LabState(BaseModel):
    name: str
    root: Path
    etcd_pid: int | None = None
    etcd_port: int = 2379
    #: Members of the lab's etcd cluster (``up --etcd-members``) and their PIDs by name.
    etcd_members: int = 1
    etcd_member_pids: dict[str, int] = {}
    ksr_pid: int | None = None
    nodes: dict[str, NodeState] = {}
    pods: dict[str, PodState] = {}  # by "namespace/name"
    next_node_index: int = 1
    next_pod_index: int = 1
    round_robin: int = 0
    #: ``up --agent-config``: merged over every node's agent config (see apps.lab.agentconfig).
    agent_overlay: dict[str, Any] = {}
    #: ``up --image``: the contiv-vswitch image the agents (and KSR, its contiv-ksr twin) run from.
    image: str = ""
    #: ``up --dataplane``: ``linux`` or ``vpp`` (a real VPP per node, see apps.lab.vpplab).
    dataplane: str = "linux"

    @property
    def underlay_ns(self) -> str:
        return f"{self.name}-u"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def pki(self) -> Path:
        """contiv-certs' files of this lab: etcd's mutual TLS and its users (``apps.lab.etcd``)."""
        return self.root / "pki"

    @property
    def etcd_endpoint(self) -> str:
        """``ETCD_ENDPOINTS``: every member's client address (one for a single-member etcd)."""
        return ",".join(f"{etcd_member_host(i)}:{self.etcd_port}" for i in range(1, self.etcd_members + 1))

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def log_path(self, what: str) -> Path:
        """``<root>/logs/<what>.log`` (its directory made)."""
        path = self.root / "logs" / f"{what}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def node(self, name: str) -> NodeState:
        try:
            return self.nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} in lab {self.name!r} "
                           f"(nodes: {', '.join(self.nodes) or 'none'})") from None

    #: What this process last read or wrote (the base of the three-way merge in :meth:`save`).
    _base: dict[str, Any] = PrivateAttr(default_factory=dict)

    def save(self) -> None:
        """Write the state, merged with what other ``contiv-lab`` commands saved meanwhile.

        Under an exclusive lock on ``lab.lock``: the file is read again and only what this
        process changed since it last read or wrote it (per node, per pod, per field) is applied
        onto it; counters take the larger value. The result goes to a temporary file of its own
        and is renamed over ``lab.json``, so concurrent commands never lose each other's updates
        (an ``apply`` racing ``node restart-agent`` keeps the new agent PID) nor share a
        temporary file.
        """
        path = self.root / "lab.json"
        with _locked(self.root):
            mine = self.model_dump(mode="json")
            disk = json.loads(path.read_text()) if path.exists() else None
            merged = mine if disk is None else _merge(self._base or disk, mine, disk)
            fd, tmp = tempfile.mkstemp(prefix=".lab-", suffix=".tmp", dir=self.root)
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(merged, out, indent=2)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
            if merged is not mine:
                self._adopt(merged)
            self._base = merged

    def _adopt(self, doc: dict[str, Any]) -> None:
        """Take over what others saved, keeping this process's objects for what it changed."""
        fresh = LabState.model_validate(doc)
        for key in ("nodes", "pods"):
            ours: dict[str, Any] = getattr(self, key)
            theirs: dict[str, Any] = getattr(fresh, key)
            for name in list(ours):
                if name not in theirs:
                    del ours[name]
            for name, value in theirs.items():
                if name not in ours or ours[name].model_dump(mode="json") != doc[key][name]:
                    ours[name] = value
        for field in type(self).model_fields:
            if field not in ("nodes", "pods"):
                setattr(self, field, getattr(fresh, field))

    @classmethod
    def load(cls, root: Path) -> LabState | None:
        path = root / "lab.json"
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        state = cls.model_validate(doc)
        state._base = doc
        return state


class HasState(Protocol):
    """Anything that carries a lab's state (the :class:`~apps.lab.cluster.Lab` facade, a part of it)."""

    state: LabState


def write_manifest(state: LabState, filename: str, obj: dict[str, Any]) -> None:
    """Put ``obj`` into the lab's manifest directory (KSR's source), atomically."""
    path = state.manifests / filename
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(obj, sort_keys=False))
    os.replace(tmp, path)


def remove_manifest(state: LabState, filename: str) -> None:
    (state.manifests / filename).unlink(missing_ok=True)


_COUNTERS = ("next_node_index", "next_pod_index", "round_robin")


def _merge(base: dict[str, Any], mine: dict[str, Any], disk: dict[str, Any]) -> dict[str, Any]:
    """Three-way merge of state documents: ``disk`` plus this process's changes since ``base``."""
    out = dict(disk)
    for key, value in mine.items():
        before = base.get(key)
        if value == before:
            continue
        if key in ("nodes", "pods") and isinstance(value, dict):
            merged = dict(disk.get(key) or {})
            old = before or {}
            for name in set(old) | set(value):
                if name not in value:
                    merged.pop(name, None)
                elif value[name] != old.get(name):
                    merged[name] = value[name]
            out[key] = merged
        elif key in _COUNTERS:
            out[key] = max(int(value), int(disk.get(key) or 0))
        else:
            out[key] = value
    return out


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lab.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
