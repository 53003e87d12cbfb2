"""Where pod IP allocations are kept: a crash-safe local file and this node's etcd prefix.

The local file is rewritten synchronously on every change (write a temporary file, fsync,
rename over the old one, fsync the directory), so an allocation that was handed out is on disk
before anyone sees it. etcd gets the same changes asynchronously, in order, retried until they
succeed (:mod:`plugins.ipam.pusher`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pydantic import BaseModel

from plugins.ipam.api import IPAMError
from plugins.podmanager.api import PodID

FILE_FORMAT_VERSION = 1
#: Prefix of the allocation records, relative to the node's ``/vnf-agent/<node>/``.
ETCD_ALLOCATIONS_PREFIX = "ipam/allocations/"


class PodIPAllocation(BaseModel):
    """One allocation as stored in etcd at ``/vnf-agent/<node>/ipam/allocations/<ns>/<name>``."""

    pod_name: str
    pod_namespace: str
    ip_address: str

    @property
    def pod(self) -> PodID:
        return PodID(self.pod_name, self.pod_namespace)


def allocation_key(pod: PodID) -> str:
    """The etcd key (relative to the node prefix) of ``pod``'s allocation."""
    return f"{ETCD_ALLOCATIONS_PREFIX}{pod.namespace}/{pod.name}"


class StateFileError(IPAMError):
    """The local allocation file exists but cannot be read or written."""


@dataclass(slots=True)
class AllocationState:
    """What the local file holds."""

    subnet: IPv4Network
    last_index: int
    allocations: dict[PodID, IPv4Address] = field(default_factory=dict)


class LocalAllocationFile:
    """The crash-safe local copy of this node's allocations (JSON, replaced atomically)."""

    def __init__(self, path: Path, *, fsync_directory: bool = True) -> None:
        self.path = path
        self.fsync_directory = fsync_directory

    def load(self) -> AllocationState | None:
        """The stored state; None when there is no file.

        Raises :class:`StateFileError` naming the file when it is unreadable or malformed.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"cannot read IPAM state file {self.path}: {exc}") from exc
        try:
            doc = json.loads(raw)
            if doc.get("version") != FILE_FORMAT_VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
            allocations = {
                PodID(str(item["name"]), str(item["namespace"])): IPv4Address(item["ip"])
                for item in doc["allocations"]
            }
            return AllocationState(
                subnet=IPv4Network(doc["subnet"]),
                last_index=int(doc["last_index"]),
                allocations=allocations,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateFileError(f"malformed IPAM state file {self.path}: {exc}") from exc

    def save(self, state: AllocationState) -> None:
        """Replace the file with ``state``, durably, before returning."""
        doc = {
            "version": FILE_FORMAT_VERSION,
            "subnet": str(state.subnet),
            "last_index": state.last_index,
            "saved_at": time.time(),
            "allocations": [
                {"name": pod.name, "namespace": pod.namespace, "ip": str(ip)}
                for pod, ip in sorted(state.allocations.items())
            ],
        }
        # Compact: json's C encoder (indenting falls back to the pure-Python one, 4x slower,
        # and it runs in the writer thread holding the GIL while the pod is being wired).
        data = json.dumps(doc, separators=(",", ":")).encode()
        directory = self.path.parent
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            if self.fsync_directory:
                dir_fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise StateFileError(f"cannot write IPAM state file {self.path}: {exc}") from exc

    def quarantine(self) -> Path:
        """Move an unreadable file aside (``<name>.corrupt``) and return where it went."""
        target = self.path.with_name(self.path.name + ".corrupt")
        os.replace(self.path, target)
        return target
