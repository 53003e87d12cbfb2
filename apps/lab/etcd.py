"""The lab's etcd: one runner (:class:`EtcdRunner`) for a single member or a cluster of several
(``contiv-lab up --etcd-members 3``).

A single member is :class:`core.etcdserver.EtcdServer` on 192.168.16.254 in the underlay namespace.
In a cluster, member ``m1`` listens on 192.168.16.254 (the single-member lab's address), ``m2`` on .253,
``m3`` on .252, ... all in the underlay namespace; agents and KSR get every member in
``ETCD_ENDPOINTS`` and follow the cluster when a member (the leader, say) dies. Also: find the
leader, kill and restart one member, take and restore a snapshot.

As the chart's, the lab's etcd requires client certificates (clients and peers) and has etcd auth
on with contiv's users (docs/etcd-tls.md). The lab can do what the chart cannot: each node's agent
gets its own certificate (``agent-<node>.crt``, user ``contiv-agent.<node>``) and may write only
its node's keys. The files are ``contiv-certs``' in ``state.pki``; the lab's own tools (etcdctl
here, the tests) use root's certificate, netctl its read-only one (``contiv-lab env``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

from apps.certs.pki import write_set
from apps.lab import netns
from apps.lab.state import ETCD_HOST, HasState, LabState, etcd_member_host
from core.etcdserver import EtcdServer, EtcdTLS, etcd_binary

CLIENT_PORT = 2379
PEER_PORT = 2380


def member_names(count: int) -> list[str]:
    return [f"m{i}" for i in range(1, count + 1)]


def member_host(name: str) -> str:
    return etcd_member_host(int(name[1:]))


def endpoints(count: int) -> str:
    """``ETCD_ENDPOINTS`` of a cluster of ``count`` members."""
    return ",".join(f"{member_host(n)}:{CLIENT_PORT}" for n in member_names(count))


#: KSR's user in the KSR image (its key must be readable there).
KSR_IMAGE_UID = 10001


def ensure_pki(state: LabState, nodes: Sequence[str] = ()) -> None:
    """The lab's CA and certificates (etcd's naming every member's address), plus an agent
    certificate per node; files already there are kept."""
    hosts = [member_host(n) for n in member_names(max(state.etcd_members, 1))]
    write_set(state.pki, etcd_hosts=hosts, agent_nodes=nodes)
    os.chown(state.pki / "ksr.key", KSR_IMAGE_UID, KSR_IMAGE_UID)  # KSR from the image (up --image)


def tls(state: LabState) -> EtcdTLS:
    return EtcdTLS.from_dir(state.pki)


def kvdb_tls(state: LabState, client: str) -> dict[str, Any]:
    """The kvdb ``tls`` section of ``client`` (``ksr``, ``agent-<node>``, ...)."""
    files = tls(state).client(client)
    return {"ca_file": str(files.ca_file), "cert_file": str(files.cert_file), "key_file": str(files.key_file)}


def etcdctl(state: LabState, *args: str, user: str = "root") -> list[str]:
    """An etcdctl command against the lab's etcd with ``user``'s certificate (run it in the
    underlay namespace)."""
    urls = ",".join(f"https://{e}" for e in state.etcd_endpoint.split(","))
    return ["etcdctl", f"--endpoints={urls}", *tls(state).etcdctl_args(user), *args]


def apply_auth(state: LabState) -> None:
    """contiv's etcd users and roles, a user per node's agent, auth on (as root; idempotent)."""
    nodes = [arg for name in sorted(state.nodes) for arg in ("--agent-node", name)]
    netns.run(netns.python_module("apps.certs.main", "etcd-auth", "--endpoint",
                                  state.etcd_endpoint.split(",")[0], "--dir", str(state.pki), *nodes),
              netns=state.underlay_ns, timeout=90)


class EtcdRunner:
    """Starts and stops the lab's etcd, whatever its size (``state.etcd_members``)."""

    def __init__(self, state: LabState) -> None:
        self.state = state

    def start(self) -> None:
        """Start a new etcd (``up``): the single member, or every member and wait for a leader;
        then its users and roles."""
        ensure_pki(self.state)
        if self.state.etcd_members > 1:
            start_cluster(self)
        else:
            self._start_single()
        apply_auth(self.state)

    def start_again(self) -> None:
        """Start what is not running (``contiv-lab etcd start``), keeping the data."""
        if self.state.etcd_members > 1:
            for name in member_names(self.state.etcd_members):
                start_member(self, name)
        elif not netns.pid_alive(self.state.etcd_pid):
            self._start_single()

    def stop(self) -> None:
        if self.state.etcd_member_pids:
            netns.kill_pids(list(self.state.etcd_member_pids.values()))
            self.state.etcd_member_pids.clear()
        if self.state.etcd_pid:
            netns.kill_pids([self.state.etcd_pid])
            self.state.etcd_pid = None
            self.state.save()

    def pids(self) -> list[int]:
        return [p for p in [self.state.etcd_pid, *self.state.etcd_member_pids.values()] if p]

    def _start_single(self) -> None:
        state = self.state
        server = EtcdServer(data_dir=state.root / "etcd", host=ETCD_HOST, client_port=state.etcd_port,
                            peer_port=PEER_PORT, netns=state.underlay_ns, log_file=state.log_path("etcd"),
                            tls=tls(state))
        server.start(timeout_s=30)
        assert server.proc is not None
        state.etcd_pid = server.proc.pid  # ``ip netns exec`` execs etcd: the same PID
        state.save()


def start_cluster(lab: HasState) -> None:
    """Start every member (a new cluster) and wait until it has a leader."""
    state = lab.state
    for name in member_names(state.etcd_members):
        host = member_host(name)
        if host != ETCD_HOST:
            netns.run(["ip", "addr", "add", f"{host}/24", "dev", "br0"], netns=state.underlay_ns,
                      check=False)
    for name in member_names(state.etcd_members):
        start_member(lab, name, new=True)
    wait_leader(lab)


def start_member(lab: HasState, name: str, new: bool = False) -> None:
    """Start member ``name`` (its data directory kept: it rejoins the cluster)."""
    state = lab.state
    if netns.pid_alive(state.etcd_member_pids.get(name)):
        return
    host = member_host(name)
    cluster = ",".join(f"{n}=https://{member_host(n)}:{PEER_PORT}"
                       for n in member_names(state.etcd_members))
    data = state.root / "etcd" / name
    cmd = [
        etcd_binary(), "--name", name, "--data-dir", str(data),
        "--listen-client-urls", f"https://{host}:{CLIENT_PORT}",
        "--advertise-client-urls", f"https://{host}:{CLIENT_PORT}",
        "--listen-peer-urls", f"https://{host}:{PEER_PORT}",
        "--initial-advertise-peer-urls", f"https://{host}:{PEER_PORT}",
        "--initial-cluster", cluster, "--initial-cluster-token", f"{state.name}-etcd",
        "--initial-cluster-state", "new" if new else "existing",
        "--log-level", "error", "--logger", "zap", *tls(state).etcd_args(),
    ]
    pid = netns.spawn(cmd, state.underlay_ns, state.log_path(f"etcd-{name}"))
    state.etcd_member_pids[name] = pid
    if name == "m1":
        state.etcd_pid = pid
    state.save()


def kill_member(lab: HasState, name: str, sig: int = 9) -> None:
    pid = lab.state.etcd_member_pids.get(name)
    if pid:
        netns.kill_pids([pid], sig=sig)
    lab.state.etcd_member_pids.pop(name, None)
    if name == "m1":
        lab.state.etcd_pid = None
    lab.state.save()


def member_status(lab: HasState) -> dict[str, dict[str, object]]:
    """Per reachable member: its ID and the leader's ID (``etcdctl endpoint status``)."""
    out = netns.run(etcdctl(lab.state, "endpoint", "status", "--write-out", "json"),
                    netns=lab.state.underlay_ns, check=False, timeout=20)
    try:
        rows = json.loads(out.stdout or "[]")
    except json.JSONDecodeError:
        return {}
    status = {}
    for row in rows:
        host = str(row["Endpoint"]).removeprefix("https://").split(":")[0]
        name = next((n for n in member_names(lab.state.etcd_members) if member_host(n) == host), host)
        header = row["Status"]["header"]
        # etcdctl's JSON leaves zero fields out: a member that knows no leader yet has none.
        status[name] = {"id": header.get("member_id"), "leader": row["Status"].get("leader")}
    return status


def leader(lab: HasState) -> str | None:
    """The name of the current leader (None without quorum)."""
    for name, row in member_status(lab).items():
        if row["leader"] and row["id"] == row["leader"]:
            return name
    return None


def wait_leader(lab: HasState, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = leader(lab)
        if found is not None:
            return found
        time.sleep(0.3)
    raise TimeoutError(f"the lab's etcd cluster has no leader after {timeout_s:g} s")


def snapshot(lab: HasState, path: str) -> None:
    """Save a snapshot of the (single-member) lab etcd to ``path``."""
    netns.run(etcdctl(lab.state, "snapshot", "save", path), netns=lab.state.underlay_ns, timeout=60)


def restore(lab: HasState, path: str) -> None:
    """Replace the single-member lab etcd's data by ``path`` (an older snapshot) and restart it.

    What an operator's restore does: every key written since the snapshot is gone, the
    revision goes back. The agents keep running. So are etcd users made since (a node added
    later): the users and roles are applied again, as the chart's etcd-auth does at every start.
    """
    if lab.state.etcd_members != 1:
        raise ValueError("restore is for the single-member lab etcd")
    runner = EtcdRunner(lab.state)
    runner.stop()
    data = lab.state.root / "etcd" / "member-data"
    shutil.rmtree(data, ignore_errors=True)
    netns.run(["etcdctl", "snapshot", "restore", path, "--name", "contiv",
               "--data-dir", str(data), "--initial-cluster", f"contiv=https://{ETCD_HOST}:{PEER_PORT}",
               "--initial-advertise-peer-urls", f"https://{ETCD_HOST}:{PEER_PORT}"], timeout=60)
    runner.start_again()
    apply_auth(lab.state)
