"""The ``pod-tuning`` plugin: per-pod sysctls and interface MTU from pod annotations.

An event handler (after ``ipnet`` in ``controller.handler_order``) with two descriptors of its
own. For each local pod it reads the pod's annotations from the controller's Kubernetes state
and desires one value per sysctl and one for the MTU; they depend on the pod's interface, so
the scheduler applies them once ipnet wired the pod, retries them, and removes them with it.

Policy for bad input: tuning never fails a pod's ADD. ``AddPod`` itself puts nothing into its
(revert-on-failure) transaction; it queues a follow-up event, best-effort and ignoring errors,
that carries the pod's tuning. Annotation items that do not parse or are not allowed are left
out with an error (log, ``GET /pod-tuning``, the error metric); the valid ones still apply.
A value the kernel refuses ends FAILED in the scheduler, shows in ``GET /pod-tuning`` and is
left out of later resyncs (so the agent stays healthy) until the annotation changes.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from prometheus_client import Counter, Gauge
from pydantic import BaseModel

from contiv_sdk import (
    AddPod,
    ControllerAPI,
    DeletePod,
    Event,
    EventHandler,
    EventMethod,
    HTTPPlugin,
    KubeStateChange,
    KubeStateReader,
    KVSchedulerAPI,
    LocalPod,
    MetricsPlugin,
    NodeUpdate,
    Plugin,
    PodID,
    PodManagerAPI,
    Transaction,
    UpdateTxnType,
    ValueState,
    Veth,
)
from pod_tuning.config import PodTuningConfig
from pod_tuning.descriptors import PodMtuDescriptor, PodSysctlDescriptor
from pod_tuning.model import PodMtu, PodSysctl, Tuning, mtu_key, parse_annotations, sysctl_key


class PodTuningRequested(Event):
    """Follow-up of an ``AddPod``: apply the pod's tuning in a transaction of its own."""

    name = "Pod Tuning"
    txn_type = UpdateTxnType.BEST_EFFORT_IGNORE_ERRORS

    def __init__(self, pod: PodID) -> None:
        super().__init__()
        self.pod = pod

    def describe(self) -> str:
        return f"Pod Tuning {self.pod}"


def kube_pod_key(pod: PodID) -> str:
    """The pod's key in the controller's Kubernetes state (``<name>/namespace/<ns>``)."""
    return f"{pod.name}/namespace/{pod.namespace}"


class PodTuningPlugin(Plugin, EventHandler):
    """Name ``pod-tuning``; deps ``kvscheduler``, ``controller``, ``podmanager``, ``http``."""

    name = "pod-tuning"
    Config = PodTuningConfig
    config: PodTuningConfig
    #: ``update`` and ``revert`` work per event: AddPods of several pods may share one commit.
    supports_batching = True
    #: It amends ipnet's pod wiring in the same transaction: it must see each event after ipnet
    #: (so enabling it is one line in ``plugins:``; ``controller.handler_order`` may still list it).
    handler_after = ("ipnet",)

    def __init__(
        self,
        config: PodTuningConfig | None = None,
        *,
        kvscheduler: KVSchedulerAPI,
        controller: ControllerAPI,
        podmanager: PodManagerAPI,
        http: HTTPPlugin | None = None,
        metrics: MetricsPlugin | None = None,
    ) -> None:
        super().__init__(config)
        self.kvscheduler = kvscheduler
        self.controller = controller
        self.podmanager = podmanager
        self.http = http
        self.metrics = metrics
        registry = metrics.registry if metrics is not None else None
        self.errors_total = Counter("pod_tuning_annotation_errors", "Bad pod tuning annotation items",
                                    registry=registry)
        self.tuned_pods = Gauge("pod_tuning_tuned_pods", "Local pods with tuning values",
                                registry=registry)
        #: Local pods (from resync, AddPod, DeletePod).
        self.pods: dict[PodID, LocalPod] = {}
        #: What each pod's annotations ask for (with the errors found in them).
        self.tuning: dict[PodID, Tuning] = {}
        #: The values this plugin desires, per pod.
        self.values: dict[PodID, dict[str, BaseModel]] = {}
        #: Pods whose veth MTU was handed over to us: the veth key and its owner's MTU.
        self.handed_over: dict[PodID, tuple[str, int]] = {}
        #: Values the dataplane refused for good (key -> (value, error)); left out until changed.
        self.rejected: dict[str, tuple[BaseModel, str]] = {}
        #: Per AddPod not yet known to have succeeded: the pod's entry before it (for revert).
        self._before_add: dict[PodID, LocalPod | None] = {}

    async def init(self) -> None:
        allowed = self.config.allowed_sysctls
        self.kvscheduler.register_descriptor(PodSysctlDescriptor(self.expected, allowed))
        self.kvscheduler.register_descriptor(PodMtuDescriptor(self.expected))
        if self.http is not None:
            router = APIRouter()

            @router.get("/pod-tuning")
            async def pod_tuning() -> dict[str, Any]:
                return self.report()

            self.http.add_router(router)

    def expected(self) -> dict[str, BaseModel]:
        """Every value this plugin desires now (the descriptors read these back)."""
        return {k: v for values in self.values.values() for k, v in values.items()}

    # ------------------------------------------------------------------ the handler contract

    def handles_event(self, event: Event) -> bool:
        if event.method is not EventMethod.UPDATE:
            return True
        if isinstance(event, KubeStateChange):
            return event.resource == "pod"
        return isinstance(event, (AddPod, DeletePod, NodeUpdate, PodTuningRequested))

    def resync(
        self, event: Event, kube_state: KubeStateReader, resync_count: int, txn: Transaction
    ) -> None:
        self._learn_rejections()
        self.pods = {pid: pod for pid, pod in self.podmanager.local_pods().items()
                     if os.path.exists(pod.netns_path)}
        self.values, self.handed_over, self._before_add = {}, {}, {}
        self.tuning = {pid: t for pid, t in self.tuning.items() if pid in self.pods}
        for pod in sorted(self.pods.values(), key=lambda p: p.id):
            self._retune(pod, kube_state, txn)

    def update(self, event: Event, txn: Transaction) -> str | None:
        self._learn_rejections()
        if isinstance(event, AddPod):
            self._before_add[event.pod.id] = self.pods.get(event.pod.id)
            self.pods[event.pod.id] = event.pod
            # Nothing into the ADD's own transaction: tuning must never fail a pod's ADD.
            self.controller.push_follow_up(PodTuningRequested(event.pod.id))
            return None
        if isinstance(event, PodTuningRequested):
            self._before_add.pop(event.pod, None)  # its AddPod succeeded: nothing to revert
            pod = self.pods.get(event.pod)
            return None if pod is None else self._retune(pod, self.controller.kube_state, txn)
        if isinstance(event, KubeStateChange):
            changed = event.new_value or event.prev_value
            pid = PodID(getattr(changed, "name", ""), getattr(changed, "namespace", ""))
            pod = self.pods.get(pid)
            return None if pod is None else self._retune(pod, self.controller.kube_state, txn)
        if isinstance(event, DeletePod):
            return self._forget(event.pod.id, txn)
        if isinstance(event, NodeUpdate):
            # ipnet re-renders every pod's veth when this node's address changes: hand over again.
            for pid in list(self.handed_over):
                self._hand_over(self.pods[pid], True, txn, only_txn=True)
        return None

    def revert(self, event: Event) -> None:
        if isinstance(event, AddPod) and event.pod.id in self._before_add:
            before = self._before_add.pop(event.pod.id)
            if before is None:
                self.pods.pop(event.pod.id, None)  # the queued follow-up then finds nothing
            else:
                self.pods[event.pod.id] = before

    def describe_internal_state(self) -> dict[str, object]:
        return {
            "values": {str(pid): sorted(v) for pid, v in sorted(self.values.items()) if v},
            "handed_over": {str(pid): list(h) for pid, h in sorted(self.handed_over.items())},
        }

    # ------------------------------------------------------------------ desired state

    def _retune(self, pod: LocalPod, kube_state: KubeStateReader, txn: Transaction) -> str | None:
        kube_pod = kube_state.get("pod", kube_pod_key(pod.id))
        annotations: dict[str, str] = dict(getattr(kube_pod, "annotations", {}) or {})
        tuning = parse_annotations(annotations, self.config)
        previous = self.tuning.get(pod.id)
        if previous is None or previous.errors != tuning.errors:
            for error in tuning.errors:
                self.log.warning("pod %s: %s", pod.id, error)
                self.errors_total.inc()
        self.tuning[pod.id] = tuning
        new = self._render(pod, tuning)
        old = self.values.get(pod.id, {})
        for key in old.keys() - new.keys():
            txn.delete(key)
        for key, value in new.items():
            txn.put(key, value)
        self.values[pod.id] = new
        self._hand_over(pod, mtu_key(pod.netns_path, pod.interface_name) in new, txn)
        self.tuned_pods.set(sum(1 for v in self.values.values() if v))
        if new == old:
            return None
        return f"pod {pod.id}: {len(new)} tuning value(s)"

    def _render(self, pod: LocalPod, tuning: Tuning) -> dict[str, BaseModel]:
        ns, ifname = pod.netns_path, pod.interface_name
        values: dict[str, BaseModel] = {
            sysctl_key(ns, name): PodSysctl(namespace=ns, ifname=ifname, name=name, value=value)
            for name, value in sorted(tuning.sysctls.items())
        }
        if tuning.mtu is not None:
            values[mtu_key(ns, ifname)] = PodMtu(namespace=ns, ifname=ifname, mtu=tuning.mtu)
        for key, value in list(values.items()):
            refused = self.rejected.get(key)
            if refused is not None and refused[0] == value:
                del values[key]
            elif refused is not None:
                del self.rejected[key]  # the annotation changed: try the new value
        return values

    def _forget(self, pid: PodID, txn: Transaction) -> str | None:
        values = self.values.pop(pid, {})
        for key in values:
            txn.delete(key)
            self.rejected.pop(key, None)
        self.pods.pop(pid, None)
        self.tuning.pop(pid, None)
        self.handed_over.pop(pid, None)
        self.tuned_pods.set(sum(1 for v in self.values.values() if v))
        return f"pod {pid}: {len(values)} tuning value(s) removed" if values else None

    def _learn_rejections(self) -> None:
        """Remember values the scheduler gave up on, so resyncs stop re-trying them."""
        for values in self.values.values():
            for key, value in values.items():
                status = self.kvscheduler.value_status(key)
                if status.state is ValueState.FAILED and key not in self.rejected:
                    self.rejected[key] = (value, status.error or "failed")
                    self.log.warning("%s refused by the dataplane: %s", key, status.error)

    # ------------------------------------------------------------------ MTU ownership

    def _hand_over(self, pod: LocalPod, want: bool, txn: Transaction, only_txn: bool = False) -> None:
        """Make ipnet's veth leave the pod end's MTU to us (``want``) or give it back.

        The veth value is ipnet's; we amend it in the transaction (``txn.get`` shows what an
        earlier handler put) or, when this event did not touch it, from the scheduler's
        desired state. MTU 0 means "leave the kernel's MTU alone" to the veth descriptor.
        """
        found = self._find_veth(pod, txn, only_txn)
        if found is None:
            return
        key, veth, end = found
        current = getattr(veth, end)
        if want and current.mtu != 0:
            self.handed_over[pod.id] = (key, current.mtu)
            txn.put(key, veth.model_copy(update={end: current.model_copy(update={"mtu": 0})}))
        elif want and pod.id not in self.handed_over:
            self.handed_over[pod.id] = (key, 0)
        elif not want and pod.id in self.handed_over:
            _, original = self.handed_over.pop(pod.id)
            if current.mtu == 0 and original:
                txn.put(key, veth.model_copy(update={end: current.model_copy(update={"mtu": original})}))

    def _find_veth(self, pod: LocalPod, txn: Transaction, only_txn: bool) -> tuple[str, Veth, str] | None:
        sources: list[Any] = [txn.values()] + ([] if only_txn else [self.kvscheduler.desired()])
        for values in sources:
            for key, value in values.items():
                if not isinstance(value, Veth):
                    continue
                for end in ("end1", "end2"):
                    e = getattr(value, end)
                    if e.namespace == pod.netns_path and e.ifname == pod.interface_name:
                        return key, value, end
        return None

    # ------------------------------------------------------------------ REST

    def report(self) -> dict[str, Any]:
        """``GET /pod-tuning``: per local pod, what it asked for, the errors, each value's state."""
        pods: dict[str, Any] = {}
        for pid, pod in sorted(self.pods.items()):
            tuning = self.tuning.get(pid, Tuning())
            states: dict[str, Any] = {}
            refused: dict[str, str] = {}
            for key in self.values.get(pid, {}):
                status = self.kvscheduler.value_status(key)
                states[key] = {"state": status.state.value, "error": status.error}
                if status.state is ValueState.FAILED:
                    refused[key] = status.error or "failed"
            for key in self._keys_of(pod, tuning):
                if key in self.rejected:
                    refused[key] = self.rejected[key][1]
            errors = list(tuning.errors) + [
                f"{key}: refused by the dataplane: {error}" for key, error in sorted(refused.items())]
            pods[str(pid)] = {"netns": pod.netns_path, "sysctls": tuning.sysctls, "mtu": tuning.mtu,
                              "values": states, "errors": errors}
        return {"pods": pods}

    @staticmethod
    def _keys_of(pod: LocalPod, tuning: Tuning) -> set[str]:
        keys = {sysctl_key(pod.netns_path, name) for name in tuning.sysctls}
        keys.add(mtu_key(pod.netns_path, pod.interface_name))
        return keys
