"""The lab's state file: what it made, so that any later command (and ``down`` after a crash)
knows the nodes, pods and processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

DEFAULT_STATE_ROOT = Path("/run/contiv-lab")
UNDERLAY_PREFIX = "192.168.16."
ETCD_HOST = UNDERLAY_PREFIX + "254"


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
    ksr_pid: int | None = None
    nodes: dict[str, NodeState] = {}
    pods: dict[str, PodState] = {}  # by "namespace/name"
    next_node_index: int = 1
    next_pod_index: int = 1
    round_robin: int = 0

    @property
    def underlay_ns(self) -> str:
        return f"{self.name}-u"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def etcd_endpoint(self) -> str:
        return f"{ETCD_HOST}:{self.etcd_port}"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def save(self) -> None:
        path = self.root / "lab.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, root: Path) -> LabState | None:
        path = root / "lab.json"
        if not path.exists():
            return None
        return cls.model_validate(json.loads(path.read_text()))
