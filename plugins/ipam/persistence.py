"""Restoring the allocations at start: the local file first, then etcd's merged in."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

from plugins.ipam.allocator import PodSubnetAllocator
from plugins.ipam.plan import pod_index_of
from plugins.ipam.store import LocalAllocationFile, StateFileError
from plugins.podmanager.api import PodID


def restore_local_file(file: LocalAllocationFile, alloc: PodSubnetAllocator, log: logging.Logger) -> bool:
    """Load the local file into ``alloc``; whether it held this subnet's state.

    An unreadable file is moved aside (etcd's allocations are relied on); a file for another
    subnet (the node got another ID) is ignored.
    """
    try:
        state = file.load()
    except StateFileError as exc:
        moved = file.quarantine()
        log.error("%s; moved it to %s and relying on etcd", exc, moved)
        return False
    if state is None:
        return False
    if state.subnet != alloc.subnet:
        log.warning("state file %s is for subnet %s, this node now has %s: ignoring it",
                    file.path, state.subnet, alloc.subnet)
        return False
    for pod, reason in alloc.restore_all(state.allocations).items():
        log.error("state file: dropping allocation of %s: %s", pod, reason)
    alloc.set_last_index(state.last_index)
    return True


def merge_remote(alloc: PodSubnetAllocator, remote: dict[PodID, IPv4Address], had_local_state: bool,
                 log: logging.Logger) -> bool:
    """Add etcd's allocations that do not clash with what the local file had; whether the
    local file must be written (something was added, or there was no local state)."""
    before = len(alloc)
    for pod, reason in alloc.restore_all(remote).items():
        log.warning("etcd allocation of %s not restored: %s", pod, reason)
    if not had_local_state:
        indexes = [pod_index_of(alloc.subnet, ip) for ip in alloc.allocations().values()]
        alloc.set_last_index(max((i for i in indexes if i is not None), default=alloc.last_index))
    return len(alloc) != before or not had_local_state
