"""The ``policy`` plugin: Kubernetes NetworkPolicies enforced on this node's pods.

An event handler registered after ipnet (and service). Layers (contiv.md 3.9): the cache
(:mod:`.cache`) holds pods, namespaces and checked policies from KSR; the processor
(:mod:`.processor`) works out which local pods a change affects and keeps the peer sets; the
configurator (:mod:`.rules`) turns the policies selecting a pod into its rule sets; the renderer
(:mod:`.renderer.nftables`) keeps one shared chain per distinct rule set and produces the next
value of the node's policy table, which goes into the event's scheduler transaction, so the
dataplane changes in the same atomic step as the event (a new pod is isolated before its CNI
ADD returns).

Bad policies (a bad CIDR, an unknown protocol, ...) are logged and skipped; the rest apply.
"""

from __future__ import annotations

from typing import Any

from core.http import HTTPPlugin
from core.metrics import MetricsPlugin
from core.plugin import Plugin
from plugins.controller.api import (
    ControllerAPI,
    Event,
    EventHandler,
    EventMethod,
    KubeStateReader,
    Transaction,
)
from plugins.controller.events import KubeStateChange
from plugins.ipam.api import IPAMAPI
from plugins.ipnet.api import IPNetAPI
from plugins.ksr.keys import RESOURCES
from plugins.ksr.model import Namespace, Pod, Policy
from plugins.podmanager.api import AddPod, DeletePod, PodID, PodManagerAPI
from plugins.policy.cache import pod_info
from plugins.policy.config import PolicyConfig
from plugins.policy.metrics import PolicyGauges
from plugins.policy.processor import Delta, PolicyProcessor
from plugins.policy.renderer import make_renderer
from plugins.policy.rest import build_router

RESOURCE_KINDS = ("pod", "namespace", "policy")


def _pod_key(pod: PodID) -> str:
    return f"{pod.namespace}/{pod.name}"


class PolicyPlugin(Plugin, EventHandler):
    """Name ``policy``; deps ``ipam`` (local pod addresses) and ``podmanager`` (local pods).

    Optional: ``controller`` (to reflect namespaces and policies), ``ipnet`` (its dataplane picks
    the ``auto`` renderer), ``http`` (REST), ``metrics`` (gauges).
    """

    name = "policy"
    Config = PolicyConfig
    config: PolicyConfig
    #: AddPods (DeletePods) of several pods may share one commit: each update puts the table as
    #: it is after that event (the last one wins); revert undoes one pod's change (``_undo``).
    supports_batching = True

    def __init__(
        self,
        config: PolicyConfig | None = None,
        *,
        ipam: IPAMAPI,
        podmanager: PodManagerAPI,
        controller: ControllerAPI | None = None,
        ipnet: IPNetAPI | None = None,
        http: HTTPPlugin | None = None,
        metrics: MetricsPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.ipam = ipam
        self.podmanager = podmanager
        self.controller = controller
        self.http = http
        self.processor = PolicyProcessor()
        self.renderer_name = self.config.renderer
        if self.renderer_name == "auto":  # follow the dataplane ipnet renders pods on
            on_vpp = ipnet is not None and ipnet.dataplane() == "vpp"
            self.renderer_name = "vpp-acl" if on_vpp else "nftables"
        self.renderer = make_renderer(self.renderer_name, self.config, ipam, ipnet)
        self.gauges = PolicyGauges(metrics.registry) if metrics is not None else None
        #: For revert: pod key -> its local address before the AddPod/DeletePod being processed.
        self._undo: dict[str, str | None] = {}

    async def init(self) -> None:
        if self.controller is not None:
            for kind in RESOURCE_KINDS:
                self.controller.register_resource(kind, *RESOURCES[kind])
        if self.http is not None:
            self.http.add_router(build_router(self))
        if self.renderer_name == "nftables":
            self.log.info("renderer nftables, table inet %s", self.config.table)
        else:
            self.log.info("renderer %s", self.renderer_name)

    # ------------------------------------------------------------------ handler

    def handles_event(self, event: Event) -> bool:
        if event.method is not EventMethod.UPDATE:
            return True
        if isinstance(event, KubeStateChange):
            return event.resource in RESOURCE_KINDS
        return isinstance(event, (AddPod, DeletePod))

    def resync(
        self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction
    ) -> None:
        processor = PolicyProcessor()
        cache = processor.cache
        for ns in kube_state.list("namespace").values():
            if isinstance(ns, Namespace):
                cache.set_namespace(ns.name, ns)
        for pod in kube_state.list("pod").values():
            if isinstance(pod, Pod):
                cache.set_pod(f"{pod.namespace}/{pod.name}", pod_info(pod))
        for policy in kube_state.list("policy").values():
            if isinstance(policy, Policy):
                _, error = cache.set_policy(f"{policy.namespace}/{policy.name}", policy)
                if error is not None:
                    self.log.error("policy %s/%s skipped: %s", policy.namespace, policy.name, error)
        for pod_id in self.podmanager.local_pods():
            ip = self.ipam.pod_ip(pod_id)
            if ip is not None:
                processor.set_local(_pod_key(pod_id), str(ip))
        processor.mark_all()
        self.processor = processor
        self.renderer.reset()
        self._commit(processor.flush(), txn, force=True)

    def update(self, event: Event, txn: Transaction) -> str | None:
        if isinstance(event, (AddPod, DeletePod)):
            key = _pod_key(event.pod.id)
            ip = self.ipam.pod_ip(event.pod.id) if isinstance(event, AddPod) else None
            self._undo[key] = self.processor.local.get(key)
            self.processor.set_local(key, None if ip is None else str(ip))
        else:
            self._undo.clear()
        if isinstance(event, KubeStateChange):
            self._kube_change(event)
        return self._commit(self.processor.flush(), txn)

    def revert(self, event: Event) -> None:
        if isinstance(event, (AddPod, DeletePod)):
            key = _pod_key(event.pod.id)
            if key in self._undo:
                self.processor.set_local(key, self._undo.pop(key))
                self.renderer.apply(self.processor.flush())
                self.renderer.set_local_pods(self.processor.local)
                self.renderer.forget_written()  # the scheduler reverted what it put

    def describe_internal_state(self) -> dict[str, object]:
        r = self.renderer.rendered()
        return {
            "pods": {key: {"ip": pod.ip, "ingress": r.ingress.get(pod.ip), "egress": r.egress.get(pod.ip)}
                     for key, pod in sorted(r.pods.items())},
            "rule_sets": sorted(r.tables),
            "bad_policies": dict(sorted(self.processor.cache.bad_policies.items())),
        }

    # ------------------------------------------------------------------ internals

    def _kube_change(self, event: KubeStateChange) -> None:
        value = event.new_value if event.new_value is not None else event.prev_value
        cache = self.processor.cache
        if event.resource == "pod" and isinstance(value, Pod):
            new = event.new_value if isinstance(event.new_value, Pod) else None
            self.processor.pod_changed(f"{value.namespace}/{value.name}",
                                       None if new is None else pod_info(new))
        elif event.resource == "namespace" and isinstance(value, Namespace):
            before = dict(cache.ns_labels(value.name))
            cache.set_namespace(value.name, event.new_value if isinstance(event.new_value, Namespace) else None)
            self.processor.namespace_changed(value.name, before)
        elif event.resource == "policy" and isinstance(value, Policy):
            key = f"{value.namespace}/{value.name}"
            new_policy = event.new_value if isinstance(event.new_value, Policy) else None
            _, error = cache.set_policy(key, new_policy)
            if error is not None:
                self.log.error("policy %s skipped: %s", key, error)
            self.processor.policy_changed(value.namespace)

    def _commit(self, delta: Delta, txn: Transaction, force: bool = False) -> str | None:
        if self.renderer.set_local_pods(self.processor.local):
            force = True  # the VPP ACL renderer: a pod no policy selects may need a table too
        if not delta and not force:
            return None
        self.renderer.apply(delta)
        self.renderer.put_into(txn)
        self._update_gauges()
        if not delta:
            return None
        pods = sorted(delta.pods)
        shown = ", ".join(pods[:5]) + (f" (+{len(pods) - 5})" if len(pods) > 5 else "")
        parts = [f"rules of {shown}"] if pods else []
        if delta.sets:
            parts.append(f"{len(delta.sets)} peer set(s)")
        return "policy: " + "; ".join(parts)

    def _update_gauges(self) -> None:
        if self.gauges is None:
            return
        r = self.renderer.rendered()
        self.gauges.policies.set(len(self.processor.cache.policies))
        self.gauges.bad_policies.set(len(self.processor.cache.bad_policies))
        self.gauges.isolated_pods.set(len({p.ip for p in r.pods.values()}))
        self.gauges.rule_sets.set(len(r.tables))
        self.gauges.peer_sets.set(len(r.peer_sets))
        self.gauges.set_elements.set(sum(len(c.elements) for c in r.peer_sets.values() if c is not None))

    def describe(self) -> dict[str, Any]:
        """The REST view (see :mod:`plugins.policy.rest`)."""
        r, cache = self.renderer.rendered(), self.processor.cache
        pods = []
        for key in sorted(self.processor.local):
            info = cache.pods.get(key)
            entry: dict[str, Any] = {
                "pod": key, "ip": self.processor.local[key],
                "policies": [] if info is None else [p.key for p in cache.selecting(info)],
                "labels_known": info is not None,
            }
            rendered = r.pods.get(key)
            for side, vmap in (("ingress", r.ingress), ("egress", r.egress)):
                table = vmap.get(rendered.ip) if rendered is not None else None
                # "chain": the rule table's name (an nftables chain, or a VPP ACL)
                entry[side] = None if table is None else {"chain": table, "rules": list(r.tables[table])}
            pods.append(entry)
        return {
            "table": f"inet {self.config.table}",
            "namespace": self.config.namespace,
            "pods": pods,
            "rule_sets": len(r.tables),
            "peer_sets": {s: sorted(c.elements) for s, c in sorted(r.peer_sets.items()) if c is not None},
            "policies": sorted(cache.policies),
            "bad_policies": dict(sorted(cache.bad_policies.items())),
        }
