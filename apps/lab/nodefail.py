"""A node that dies with its pods (``contiv-lab node remove --force``).

Real nodes do not send CNI DEL for their pods when they die. The lab forgets the pods as
Kubernetes would (their manifests go, so KSR deletes their records), stops their workloads and
removes their namespaces; what the dead agent left in etcd (pod records, allocations under
``/vnf-agent/<node>/``, the node's ID) is KSR's node clean-up's to release once the node's
manifest goes.
"""

from __future__ import annotations

from apps.lab import netns
from apps.lab.state import LabState, remove_manifest


def drop_pods_of_dead_node(state: LabState, keys: list[str]) -> None:
    """Forget the pods ``keys`` ("namespace/name") of a node whose agent is already dead."""
    for key in keys:
        pod = state.pods.get(key)
        if pod is None:
            continue
        if pod.echo_pid:
            netns.kill_pids([pod.echo_pid])
        netns.ns_delete(pod.netns)
        remove_manifest(state, f"pod-{pod.namespace}-{pod.name}.yaml")
        del state.pods[key]
    state.save()
