"""etcd users and roles for contiv: who may write which keys (etcd auth, CN = user).

With ``--client-cert-auth`` and auth enabled, etcd takes a client certificate's CN as its user
(no password). :func:`apply` creates the users and roles below, then enables auth; it is
idempotent and runs as ``root`` (``contiv-certs etcd-auth``).

=========================  ====================================================================
user                       may
=========================  ====================================================================
root                       everything (auth set-up only; its certificate stays out of the pods)
contiv-ksr                 read and write ``/vnf-agent/contiv-ksr/`` and its leader election
                           ``/contiv-ksr/``; write agents' prefixes ``/vnf-agent/<node>/`` (its
                           node clean-up deletes a departed node's keys: etcd has no delete-only
                           permission)
contiv-agent               (one certificate for all nodes) read ``/vnf-agent/``; write every
                           agent prefix (not KSR's) and the node-ID records
                           ``/vnf-agent/contiv-ksr/allocatedIDs/``
contiv-agent.<node>        (a per-node certificate) read ``/vnf-agent/``; write only
                           ``/vnf-agent/<node>/`` and the node-ID records
contiv-netctl              read ``/vnf-agent/``
=========================  ====================================================================

Every role also reads the single key ``"\\0"``: the broker reads it for the store's revision.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from aetcd import rpc

from apps.certs.pki import AGENT_USER, KSR_USER, NETCTL_USER, ROOT_USER, agent_user
from core.kvdb.etcd import EtcdBroker, prefix_range_end

log = logging.getLogger("contiv.certs.etcdauth")

ROOT = "/vnf-agent/"
KSR_PREFIX = "/vnf-agent/contiv-ksr/"
IDS_PREFIX = KSR_PREFIX + "allocatedIDs/"
ELECTION_PREFIX = "/contiv-ksr/"
READ, WRITE, READWRITE = rpc.Permission.READ, rpc.Permission.WRITE, rpc.Permission.READWRITE


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission on the keys [key, range_end) (range_end "" = the one key)."""

    perm: int
    key: bytes
    range_end: bytes = b""


def prefix(perm: int, key: str) -> Grant:
    raw = key.encode()
    return Grant(perm, raw, prefix_range_end(raw))


#: The agents' prefixes: /vnf-agent/ without KSR's (two ranges around it).
AGENT_SPACE = (Grant(READWRITE, ROOT.encode(), KSR_PREFIX.encode()),
               Grant(READWRITE, prefix_range_end(KSR_PREFIX.encode()), prefix_range_end(ROOT.encode())))
REVISION_KEY = Grant(READ, b"\0")


def roles(agent_nodes: Sequence[str] = ()) -> dict[str, list[Grant]]:
    """Role (named as its user) -> grants."""
    out = {
        KSR_USER: [prefix(READWRITE, KSR_PREFIX), prefix(READWRITE, ELECTION_PREFIX),
                   *(Grant(WRITE, g.key, g.range_end) for g in AGENT_SPACE), REVISION_KEY],
        AGENT_USER: [prefix(READ, ROOT), *AGENT_SPACE, prefix(READWRITE, IDS_PREFIX), REVISION_KEY],
        NETCTL_USER: [prefix(READ, ROOT), REVISION_KEY],
    }
    for node in agent_nodes:
        if not node or "/" in node:
            raise ValueError(f"node name {node!r}: must be non-empty and have no '/'")
        out[agent_user(node)] = [prefix(READ, ROOT), prefix(READWRITE, f"{ROOT}{node}/"),
                                 prefix(READWRITE, IDS_PREFIX), REVISION_KEY]
    return out


async def _ignore_exists(call: object) -> None:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        if "already exists" not in (err.details() or "") and "already granted" not in (err.details() or ""):
            raise


async def _add_user(auth: rpc.AuthStub, name: str) -> None:
    # No password: the user authenticates with its certificate (CN) only.
    request = rpc.AuthUserAddRequest(name=name, password=secrets.token_hex(24),
                                     options=rpc.UserAddOptions(no_password=True))
    await _ignore_exists(auth.UserAdd(request))


async def apply(broker: EtcdBroker, agent_nodes: Sequence[str] = ()) -> dict[str, list[Grant]]:
    """Create ``root`` and every role and user of :func:`roles`, grant, enable auth.

    ``broker`` is connected with root's certificate. Grants already there stay; a grant a
    role should not have is revoked, so re-running after an upgrade converges.
    """
    auth = rpc.AuthStub(broker.channel)
    await _add_user(auth, ROOT_USER)
    await _ignore_exists(auth.RoleAdd(rpc.AuthRoleAddRequest(name="root")))
    await _ignore_exists(auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=ROOT_USER, role="root")))
    wanted = roles(agent_nodes)
    for role, grants in wanted.items():
        await _ignore_exists(auth.RoleAdd(rpc.AuthRoleAddRequest(name=role)))
        current = await auth.RoleGet(rpc.AuthRoleGetRequest(role=role))
        keep = {(g.perm, g.key, g.range_end) for g in grants}
        for perm in current.perm:
            if (perm.permType, perm.key, perm.range_end) not in keep:
                await auth.RoleRevokePermission(rpc.AuthRoleRevokePermissionRequest(
                    role=role, key=perm.key, range_end=perm.range_end))
        for g in grants:
            await auth.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(
                name=role, perm=rpc.Permission(permType=g.perm, key=g.key, range_end=g.range_end)))
        await _add_user(auth, role)
        await _ignore_exists(auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=role, role=role)))
    await auth.AuthEnable(rpc.AuthEnableRequest())
    log.info("etcd auth enabled: roles %s", ", ".join(sorted(wanted)))
    return wanted
