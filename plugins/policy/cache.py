"""The policy cache: pods, namespaces and (checked) policies, with the lookups the processor needs.

Only what matters for policies is kept per pod (labels, address, named container ports). Local
pods (wired by this node) get their address from IPAM as soon as they are wired, before KSR
reflects the pod's status. Every namespace carries ``kubernetes.io/metadata.name`` as the API
server sets it, also when the reflected object lacks it (e.g. a static manifest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from plugins.ksr.model import Namespace, Pod, Policy
from plugins.policy.rules import ContainerPorts
from plugins.policy.selectors import BadPolicyError
from plugins.policy.spec import PolicySpec, policy_spec

NAME_LABEL = "kubernetes.io/metadata.name"
_DONE_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What policies see of a pod; ``ip`` "" until it has one."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""
    ports: ContainerPorts = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_info(pod: Pod) -> PodInfo | None:
    """The pod as policies see it; None for pods policies never select (host network, done)."""
    if pod.host_network or pod.phase in _DONE_PHASES:
        return None
    ports = tuple(sorted({(p.name, str(p.protocol), p.container_port)
                          for c in pod.containers for p in c.ports if p.name}))
    return PodInfo(pod.namespace, pod.name, dict(pod.labels), pod.ip_address, ports)


def namespace_labels(ns: Namespace) -> dict[str, str]:
    return {**ns.labels, NAME_LABEL: ns.name}


class PolicyCache:
    """The objects policies are computed from, indexed by namespace."""

    def __init__(self) -> None:
        self.pods: dict[str, PodInfo] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        self.policies: dict[str, PolicySpec] = {}
        #: Policies that failed their checks: key -> reason.
        self.bad_policies: dict[str, str] = {}
        self.pods_by_ns: dict[str, set[str]] = {}
        self.policies_by_ns: dict[str, set[str]] = {}

    def ns_labels(self, namespace: str) -> Mapping[str, str]:
        labels = self.namespaces.get(namespace)
        return labels if labels is not None else {NAME_LABEL: namespace}

    def set_pod(self, key: str, info: PodInfo | None) -> PodInfo | None:
        """Store (or remove) a pod; returns the previous one."""
        old = self.pods.pop(key, None)
        if old is not None:
            self.pods_by_ns.get(old.namespace, set()).discard(key)
        if info is not None:
            self.pods[key] = info
            self.pods_by_ns.setdefault(info.namespace, set()).add(key)
        return old

    def set_namespace(self, name: str, ns: Namespace | None) -> None:
        if ns is None:
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = namespace_labels(ns)

    def set_policy(self, key: str, policy: Policy | None) -> tuple[PolicySpec | None, str | None]:
        """Store a policy (checked) or remove it; returns the previous spec and the error, if
        the new policy is bad (it is then left out, as if deleted)."""
        old = self.policies.pop(key, None)
        if old is not None:
            self.policies_by_ns.get(old.namespace, set()).discard(key)
        self.bad_policies.pop(key, None)
        if policy is None:
            return old, None
        try:
            spec = policy_spec(policy)
        except (BadPolicyError, ValueError) as exc:
            self.bad_policies[key] = str(exc)
            return old, str(exc)
        self.policies[key] = spec
        self.policies_by_ns.setdefault(spec.namespace, set()).add(key)
        return old, None

    def selecting(self, pod: PodInfo) -> list[PolicySpec]:
        """Every policy selecting ``pod``, sorted by key."""
        keys = self.policies_by_ns.get(pod.namespace, ())
        found = [self.policies[k] for k in keys if self.policies[k].selector.matches(pod.labels)]
        return sorted(found, key=lambda p: p.name)

    def has_policies(self, namespace: str) -> bool:
        return bool(self.policies_by_ns.get(namespace))
