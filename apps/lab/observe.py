"""Watching a lab: an agent's readiness and internal state (asked inside its node's namespace),
and the node mesh's convergence (every agent has exactly the other nodes as peers, at the
addresses their dataplane gives them)."""

from __future__ import annotations

import json
import time
from typing import Any

from apps.lab import netns
from apps.lab.dataplane import Dataplane
from apps.lab.errors import LabError
from apps.lab.state import LabState

AGENT_URL = "http://127.0.0.1:9999"


def agent_get(state: LabState, name: str, path: str, answers: tuple[int, ...] = (0,)) -> dict[str, Any] | None:
    """GET ``path`` from node ``name``'s agent: its JSON body, or ``None`` when it does not answer
    (``answers``: the exit codes of :mod:`apps.lab.http_get` that carry a body)."""
    node = state.node(name)
    out = netns.run(netns.python_module("apps.lab.http_get", AGENT_URL + path),
                    netns=node.netns, check=False, timeout=10)
    if out.returncode not in answers or not out.stdout.strip():
        return None
    try:
        body: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        return None
    return body


def agent_ready(state: LabState, name: str) -> dict[str, Any] | None:
    """The agent's ``/readiness`` (also when it says not ready), or ``None``."""
    return agent_get(state, name, "/readiness", answers=(0, 1))


def internal_state(state: LabState, name: str) -> dict[str, Any] | None:
    """The agent's ``/controller/internal-state`` (what each handler believes)."""
    return agent_get(state, name, "/controller/internal-state")


def wait_agent_ready(state: LabState, name: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        node = state.node(name)
        if not netns.pid_alive(node.agent_pid):
            raise LabError(f"the agent of {name} exited; see {state.log_path(f'agent-{name}')}")
        last = agent_ready(state, name)
        if last is not None and last.get("ready"):
            return
        time.sleep(0.2)
    raise LabError(f"the agent of {name} is not ready after {timeout_s:g}s: {last}")


def mesh_gaps(state: LabState, dataplane: Dataplane) -> list[str]:
    """What keeps the node mesh from being complete (empty when every agent has every peer)."""
    gaps = []
    for node in state.nodes.values():
        believed = internal_state(state, node.name)
        if believed is None:
            gaps.append(f"{node.name}: agent not answering")
            continue
        own = ((believed.get("ipnet") or {}).get("node") or {}).get("node_ip", "")
        if str(own).split("/")[0] != dataplane.data_ip(node):
            gaps.append(f"{node.name}: uses {own or 'no address'} as its own, not {dataplane.data_ip(node)}")
        remotes = (believed.get("ipnet") or {}).get("remotes") or {}
        for peer in state.nodes.values():
            if peer.name == node.name:
                continue
            entry = remotes.get(peer.name)
            if entry is None:
                gaps.append(f"{node.name}: no mesh entry for {peer.name}")
            elif str(entry.get("node_ip", "")).split("/")[0] != dataplane.data_ip(peer):
                gaps.append(f"{node.name}: {peer.name} at {entry.get('node_ip')}, not {dataplane.data_ip(peer)}")
        for gone in set(remotes) - set(state.nodes):
            gaps.append(f"{node.name}: still meshed with removed node {gone}")
    return gaps


def wait_converged(state: LabState, dataplane: Dataplane, timeout_s: float = 60.0) -> None:
    """Wait until every agent has a mesh entry for exactly the other lab nodes."""
    deadline = time.monotonic() + timeout_s
    gaps = mesh_gaps(state, dataplane)
    while gaps and time.monotonic() < deadline:
        time.sleep(0.3)
        gaps = mesh_gaps(state, dataplane)
    if gaps:
        raise LabError(f"the node mesh did not converge in {timeout_s:g}s: {'; '.join(gaps)}")
