"""Node ID allocation in etcd (contiv.md 3.2): first free ID from 1, put-if-absent, reuse by name.

Every record lives at ``allocatedIDs/<id>`` relative to the KSR prefix
``/vnf-agent/contiv-ksr/`` and holds the JSON of :class:`plugins.nodesync.api.VppNode`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from core.kvdb.api import KVBroker, encode_model
from plugins.nodesync.api import VppNode

#: Prefix of the node ID records, relative to ``/vnf-agent/contiv-ksr/``.
ALLOCATED_IDS_PREFIX = "allocatedIDs/"


class NodeIDAllocationError(Exception):
    """No node ID could be claimed (too many lost races, or no ID left)."""


def node_id_key(node_id: int) -> str:
    """The record key of ``node_id`` relative to the KSR prefix."""
    return f"{ALLOCATED_IDS_PREFIX}{node_id}"


def parse_node_id_key(key: str) -> int | None:
    """The ID in a relative record key, or None when the key is not ``allocatedIDs/<positive int>``."""
    if not key.startswith(ALLOCATED_IDS_PREFIX):
        return None
    tail = key[len(ALLOCATED_IDS_PREFIX):]
    if not tail.isdigit():
        return None
    value = int(tail)
    return value if value > 0 else None


def first_free_id(used: Iterable[int], max_id: int | None = None) -> int | None:
    """The smallest positive integer not in ``used`` (IDs 1,2,4 -> 3); None when past ``max_id``."""
    taken = set(used)
    candidate = 1
    while candidate in taken:
        candidate += 1
    if max_id is not None and candidate > max_id:
        return None
    return candidate


@dataclass(frozen=True, slots=True)
class StoredNode:
    """A parsed record with the revision it was read at (for compare-and-put)."""

    node: VppNode
    mod_revision: int


async def read_records(broker: KVBroker, log: logging.Logger) -> tuple[dict[int, StoredNode], set[int]]:
    """Every well-formed record by ID, and the IDs whose record is malformed (still taken)."""
    records: dict[int, StoredNode] = {}
    broken: set[int] = set()
    for kv in await broker.list(ALLOCATED_IDS_PREFIX):
        node_id = parse_node_id_key(kv.key)
        if node_id is None:
            log.error("ignoring node ID record with a malformed key %r", kv.key)
            continue
        try:
            node = VppNode.model_validate_json(kv.value)
        except ValidationError as exc:
            log.error("node ID record %s is malformed (ID kept reserved): %s", kv.key, exc)
            broken.add(node_id)
            continue
        if node.id != node_id:
            log.error("node ID record %s names ID %d (ID kept reserved)", kv.key, node.id)
            broken.add(node_id)
            continue
        records[node_id] = StoredNode(node, kv.mod_revision)
    return records, broken


async def allocate_node_id(
    broker: KVBroker,
    name: str,
    *,
    ip_addresses: Sequence[str] = (),
    mgmt_addresses: Sequence[str] = (),
    max_attempts: int = 10,
    max_id: int | None = None,
    log: logging.Logger,
) -> VppNode:
    """Claim this node's ID: reuse the record that carries ``name``, else the first free ID.

    ``broker`` is a view on the KSR prefix. A lost put-if-absent race (another node took the
    same ID in between) retries with a fresh list, at most ``max_attempts`` times.
    """
    if not name:
        raise NodeIDAllocationError("cannot allocate a node ID for an empty node name")
    for attempt in range(1, max_attempts + 1):
        records, broken = await read_records(broker, log)
        mine = sorted(node_id for node_id, stored in records.items() if stored.node.name == name)
        if mine:
            if len(mine) > 1:
                log.warning("node %s holds several IDs %s; using %d", name, mine, mine[0])
            return records[mine[0]].node
        node_id = first_free_id((*records, *broken), max_id)
        if node_id is None:
            raise NodeIDAllocationError(f"no free node ID left for node {name} (all of 1..{max_id} taken)")
        record = VppNode(
            id=node_id, name=name, ip_addresses=list(ip_addresses), mgmt_addresses=list(mgmt_addresses)
        )
        if await broker.put_if_absent(node_id_key(node_id), encode_model(record)):
            log.info("node %s got node ID %d (attempt %d)", name, node_id, attempt)
            return record
        log.info("node ID %d was taken by another node meanwhile; retrying (attempt %d)", node_id, attempt)
        # Spread the retries of nodes racing for the same ID.
        await asyncio.sleep(random.uniform(0, 0.01 * attempt))
    raise NodeIDAllocationError(
        f"could not allocate a node ID for node {name}: lost the race {max_attempts} times"
    )


async def update_node_record(
    broker: KVBroker,
    node_id: int,
    name: str,
    *,
    ip_addresses: Sequence[str] | None = None,
    mgmt_addresses: Sequence[str] | None = None,
    max_attempts: int = 10,
    log: logging.Logger,
) -> VppNode:
    """Rewrite this node's record with new addresses, only when they changed (compare-and-put).

    ``None`` keeps a field as stored. Raises :class:`NodeIDAllocationError` when the record
    is gone or belongs to another node.
    """
    for _ in range(max_attempts):
        kv = await broker.get(node_id_key(node_id))
        if kv is None:
            raise NodeIDAllocationError(f"node ID record {node_id} of node {name} disappeared")
        current = VppNode.model_validate_json(kv.value)
        if current.name != name:
            raise NodeIDAllocationError(f"node ID {node_id} now belongs to node {current.name}, not {name}")
        wanted = current.model_copy(
            update={
                "ip_addresses": list(ip_addresses) if ip_addresses is not None else current.ip_addresses,
                "mgmt_addresses": list(mgmt_addresses) if mgmt_addresses is not None else current.mgmt_addresses,
            }
        )
        if sorted(wanted.ip_addresses) == sorted(current.ip_addresses) and sorted(
            wanted.mgmt_addresses
        ) == sorted(current.mgmt_addresses):
            return current
        if await broker.compare_and_put(node_id_key(node_id), encode_model(wanted), kv.mod_revision):
            log.info("node %s (ID %d): addresses now %s, mgmt %s", name, node_id,
                     wanted.ip_addresses, wanted.mgmt_addresses)
            return wanted
    raise NodeIDAllocationError(f"node ID record {node_id} kept changing; gave up after {max_attempts} attempts")
