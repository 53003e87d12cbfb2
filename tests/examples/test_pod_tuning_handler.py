"""The pod-tuning handler's methods with the controller's own transaction: batching-safe revert,
the follow-up instead of touching the ADD, the MTU hand-over and give-back, DEL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from contiv_sdk import AddPod, DeletePod, Event, KubePod, LocalPod, PodID, Veth, VethEnd
from contiv_sdk.testing import EventTransaction, KVScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "pod-tuning-plugin"))
from pod_tuning.model import PodMtu, mtu_key
from pod_tuning.plugin import PodTuningPlugin, PodTuningRequested


class KubeState:
    def __init__(self) -> None:
        self.pods: dict[str, KubePod] = {}

    def list(self, resource: str) -> dict[str, Any]:
        return dict(self.pods) if resource == "pod" else {}

    def get(self, resource: str, name: str) -> Any | None:
        return self.pods.get(name) if resource == "pod" else None


class Controller:
    def __init__(self) -> None:
        self.follow_ups: list[Event] = []
        self.kube_state = KubeState()

    def push_follow_up(self, event: Event) -> None:
        self.follow_ups.append(event)


class PodManager:
    def local_pods(self) -> dict[PodID, LocalPod]:
        return {}


def local(name: str) -> LocalPod:
    return LocalPod(name=name, namespace="default", container_id=f"c-{name}", netns_path=f"/run/netns/{name}")


def veth_of(pod: LocalPod, mtu: int) -> Veth:
    return Veth(name=f"pod-{pod.name}", end1=VethEnd(namespace=pod.netns_path, ifname="eth0", mtu=mtu),
                end2=VethEnd(namespace="", ifname=f"cv{pod.name}", mtu=mtu))


async def test_add_puts_nothing_queues_a_follow_up_and_reverts_per_event() -> None:
    controller = Controller()
    plugin = PodTuningPlugin(kvscheduler=KVScheduler(), controller=controller, podmanager=PodManager())
    assert plugin.supports_batching
    a, b = AddPod(local("a")), AddPod(local("b"))
    txn = EventTransaction()
    assert plugin.update(a, txn) is None and plugin.update(b, txn) is None
    assert dict(txn.values()) == {}  # nothing in the ADD's own transaction
    assert [e.pod for e in controller.follow_ups if isinstance(e, PodTuningRequested)] == [
        PodID("a", "default"), PodID("b", "default")]
    plugin.revert(a)  # a batch member failed: only its own change is undone
    assert set(plugin.pods) == {PodID("b", "default")}
    assert plugin.update(controller.follow_ups[0], EventTransaction()) is None  # a is gone: nothing


async def test_mtu_is_handed_over_and_given_back() -> None:
    controller = Controller()
    scheduler = KVScheduler()
    plugin = PodTuningPlugin(kvscheduler=scheduler, controller=controller, podmanager=PodManager())
    pod = local("web")
    plugin.update(AddPod(pod), EventTransaction())
    controller.kube_state.pods["web/namespace/default"] = KubePod(
        name="web", namespace="default", annotations={"tuning.example.com/mtu": "1400"})
    txn = EventTransaction()
    txn.put("config/linux/v1/veth/pod-web", veth_of(pod, 1450))  # as ipnet put it, earlier
    assert plugin.update(controller.follow_ups[0], txn) == "pod default/web: 1 tuning value(s)"
    assert txn.get(mtu_key(pod.netns_path, "eth0")) == PodMtu(namespace=pod.netns_path, ifname="eth0", mtu=1400)
    amended = txn.get("config/linux/v1/veth/pod-web")
    assert isinstance(amended, Veth) and amended.end1.mtu == 0 and amended.end2.mtu == 1450
    assert plugin.handed_over == {PodID("web", "default"): ("config/linux/v1/veth/pod-web", 1450)}

    controller.kube_state.pods["web/namespace/default"] = KubePod(name="web", namespace="default")
    txn = EventTransaction()
    txn.put("config/linux/v1/veth/pod-web", amended)
    plugin.update(controller.follow_ups[0], txn)
    assert txn.values()[mtu_key(pod.netns_path, "eth0")] is None  # deleted
    given_back = txn.get("config/linux/v1/veth/pod-web")
    assert isinstance(given_back, Veth) and given_back.end1.mtu == 1450
    assert plugin.handed_over == {}

    txn = EventTransaction()
    assert plugin.update(DeletePod(pod), txn) is None  # no values left to remove
    assert PodID("web", "default") not in plugin.pods
