"""Services and policies rendered into VPP from empty, against raw vpp-papi issuing the same messages.

* ``services_1k_s``: 1,000 services x 2 ports x 3 endpoints through the NAT44 service renderer
  and the scheduler (2,000 load-balanced mappings), from empty; ``services_raw_s`` the same
  ``nat44_add_del_lb_static_mapping`` messages through raw vpp-papi; ``services_ratio`` raw/ours
  (goal >= 0.8).
* ``services_change_ms``: then one service's endpoint replaced (one commit, ms).
* ``services_cnat_*``: the same through the cnat renderer (2,000 ``cnat_translation_update``;
  raw: the same messages), ``services_cnat_change_ms`` likewise. ``--only services`` skips the
  policy runs.
* ``policy_1k_s``: 200 pods x 50 policies (each pod selected by 5, peers 4 pods each, one TCP
  port) through the ACL policy renderer and the scheduler, from empty; ``policy_raw_s`` the same
  ``acl_add_replace`` and ``acl_interface_set_acl_list`` messages raw; ``policy_ratio``;
  ``policy_render_s`` the renderer's time to compute those values from the processor's changes.
* ``policy_egress_*``: the same with each pod's rules restricting its egress too (a local table
  per pod combining the other pods' egress, the node-global table on an uplink, reflective ACLs).

On a real VPP when one is installed (``CONTIV_TEST_VPP_DIR`` or ``vpp`` on PATH; ``target``
says which), else on the stand-in (its own process). Usage:
``python bench/vpp_scale.py --json out.json [--services 1000] [--pods 200]`` (root).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from table import agent_process_policy, emit  # bench/table.py (the script's directory is on sys.path)
from vpp_papi import VPPApiClient

from plugins.kvscheduler.scheduler import KVScheduler
from plugins.policy.processor import Delta, LocalPodRules, SetContent
from plugins.policy.renderer.acl import AclPolicyRenderer
from plugins.policy.rules import PodRules, PortMatch, Rule
from plugins.service.renderer.cnat import CnatServiceRenderer
from plugins.service.renderer.nat44 import Nat44RenderSettings, Nat44ServiceRenderer
from plugins.vpp import model as m
from plugins.vpp import nat as n
from plugins.vpp.connection import VPPConnection
from plugins.vpp.descriptors import all_descriptors
from plugins.vpp.descriptors.acl import _encode_rule
from plugins.vpp.descriptors.cnat import translation_message
from plugins.vpp.index import Indexes
from tests.vppreal import RealVPP, find_vpp
from tests.vppreal.services import service
from tests.vppstub import default_api_dir


class Target:
    """A fresh VPP (real or stand-in) per measurement."""

    def __init__(self) -> None:
        self.install, self.how = find_vpp()
        self.netns = f"vpp17-bench-{uuid.uuid4().hex[:6]}"
        self.vpp: RealVPP | None = None
        self.stub: subprocess.Popen[str] | None = None
        self.api_socket = self.api_dir = ""
        self.poll_sleep_usec = 100

    @property
    def name(self) -> str:
        return f"real VPP ({self.how})" if self.install is not None else "stand-in"

    def start(self) -> None:
        if self.install is not None:
            subprocess.run(["ip", "netns", "add", self.netns], check=True)
            self.vpp = RealVPP(self.install, self.netns, "bench", poll_sleep_usec=self.poll_sleep_usec).start()
            self.api_socket, self.api_dir = self.vpp.api_socket, self.vpp.api_dir
            return
        self.api_socket, self.api_dir = tempfile.mkdtemp(prefix="vpps-") + "/api.sock", default_api_dir()
        self.stub = subprocess.Popen([sys.executable, "-m", "tests.vppstub", "--socket", self.api_socket],
                                     cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
        assert self.stub.stdout is not None
        self.stub.stdout.readline()

    def stop(self) -> None:
        if self.vpp is not None:
            self.vpp.cleanup()
            subprocess.run(["ip", "netns", "del", self.netns], check=False)
            self.vpp = None
        if self.stub is not None:
            self.stub.terminate()
            self.stub.wait(timeout=10)
            self.stub = None


def raw_client(target: Target) -> VPPApiClient:
    client = VPPApiClient(apidir=[target.api_dir], use_socket=True, server_address=target.api_socket,
                          async_thread=False, read_timeout=30)
    client.connect("bench-raw")
    return client


def check(reply: Any) -> None:
    if reply.retval:
        raise RuntimeError(f"{type(reply).__name__}: retval {reply.retval}")


async def ours(target: Target, setup: dict[str, Any], values: dict[str, Any],
               change: dict[str, Any] | None = None) -> tuple[float, float]:
    """Seconds to commit ``values`` from empty (after ``setup``), then seconds for ``change``."""
    conn = VPPConnection(target.api_socket, target.api_dir, reply_timeout_s=30)
    await conn.connect()
    scheduler = KVScheduler(verify=False)
    for descriptor in all_descriptors(conn, Indexes()):
        scheduler.register_descriptor(descriptor)
    try:
        result = await scheduler.commit(setup)
        assert result.ok, result.errors
        started = time.perf_counter()
        result = await scheduler.commit(values)
        elapsed = time.perf_counter() - started
        assert result.ok, list(result.errors.items())[:3]
        changed = 0.0
        if change:
            started = time.perf_counter()
            result = await scheduler.commit(change)
            changed = time.perf_counter() - started
            assert result.ok, list(result.errors.items())[:3]
        return elapsed, changed
    finally:
        await scheduler.close()
        await conn.close()


def services_values(count: int, renderer: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The renderer's values for ``count`` services, and the change of one endpoint of one."""
    if renderer is None:
        renderer = Nat44ServiceRenderer(Nat44RenderSettings(pod_network=IPv4Network("10.1.0.0/16")))

    def one(i: int, first: int = 2) -> Any:
        backends = [(f"10.1.{k}.{first + i % 250}", 8080, f"node{k}") for k in (1, 2, 3)]
        return service(f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}", 80, backends, me="node1", protocols=("tcp", "udp"))

    for i in range(count):
        svc = one(i)
        renderer.set_service(svc.key, svc)
    values = dict(renderer.values())
    changed = one(0, first=3)  # every endpoint of s0 moved by one address: its two frontends change
    renderer.set_service(changed.key, changed)
    new = dict(renderer.values())
    change: dict[str, Any] = {k: v for k, v in new.items() if values.get(k) != v}
    change.update(dict.fromkeys(renderer.take_removed()))
    return values, change


def raw_cnat(target: Target, values: dict[str, Any]) -> float:
    client = raw_client(target)
    try:
        started = time.perf_counter()
        for v in values.values():
            check(client.api.cnat_translation_update(translation=translation_message(v)))
        return time.perf_counter() - started
    finally:
        client.disconnect()


def raw_services(target: Target, values: dict[str, Any]) -> float:
    client = raw_client(target)
    try:
        check(client.api.ip_table_add_del(is_add=True, table={"table_id": 1, "name": "raw"}))
        check(client.api.nat44_ed_plugin_enable_disable(enable=True, sessions=0, inside_vrf=0, outside_vrf=0))
        started = time.perf_counter()
        for v in values.values():
            check(client.api.nat44_add_del_lb_static_mapping(
                is_add=True, flags=n.SELF_TWICE_NAT_FLAG | n.OUT2IN_ONLY_FLAG, external_addr=str(v.external_ip),
                external_port=v.external_port, protocol=n.PROTOCOLS[v.protocol], affinity=0, tag=v.tag,
                local_num=len(v.locals), locals=[{"addr": str(x.ip), "port": x.port, "probability": x.probability,
                                                  "vrf_id": x.vrf} for x in v.locals]))
        return time.perf_counter() - started
    finally:
        client.disconnect()


def pods_and_policies(pods: int, policies: int, egress: bool = False) -> tuple[dict[str, Any], dict[str, Any], float]:
    """The setup (interfaces), the ACL renderer's values and how long rendering them took;
    ``egress``: the same rules restrict each pod's egress too (local tables combine them, the
    global table lands on an ``uplink``)."""
    names = [f"pod-{i}" for i in range(pods)] + (["uplink"] if egress else [])
    setup = {m.interface_key(name): m.Interface(name=name, type=m.InterfaceType.LOOPBACK) for name in names}
    ips = {i: f"10.1.{1 + i // 250}.{2 + i % 250}" for i in range(pods)}
    sets = {f"p-{j}": SetContent("addr", frozenset(ips[(j * 4 + k) % pods] for k in range(4)))
            for j in range(policies)}
    delta = Delta(sets=dict(sets))
    for i in range(pods):
        rules = tuple(Rule(peers=f"p-{j}", ports=(PortMatch("tcp", 8000 + j, 8000 + j),))
                      for j in range(policies) if j % 10 == i % 10)
        pod_rules = PodRules(ingress=rules, egress=rules if egress else None)
        delta.pods[f"default/pod-{i}"] = LocalPodRules(ips[i], pod_rules)
    renderer = AclPolicyRenderer(lambda key, ip: key.split("/")[1], outbound=("uplink",))
    started = time.perf_counter()
    renderer.apply(delta)
    values = dict(renderer.values())
    return setup, values, time.perf_counter() - started


def raw_policy(target: Target, setup: dict[str, Any], values: dict[str, Any]) -> float:
    client = raw_client(target)
    try:
        index = {}
        for name in setup.values():
            reply = client.api.create_loopback_instance(mac_address="00:00:00:00:00:00", is_specified=False,
                                                        user_instance=m.NO_INDEX)
            check(reply)
            index[name.name] = reply.sw_if_index
        started = time.perf_counter()
        acl_index = {}
        for v in values.values():
            if isinstance(v, m.Acl):
                reply = client.api.acl_add_replace(acl_index=m.NO_INDEX, tag=v.tag, count=len(v.rules),
                                                   r=[_encode_rule(r) for r in v.rules])
                check(reply)
                acl_index[v.name] = reply.acl_index
        for v in values.values():
            if isinstance(v, m.AclInterface):
                acls = [acl_index[a] for a in (*v.input, *v.output)]
                check(client.api.acl_interface_set_acl_list(sw_if_index=index[v.interface], count=len(acls),
                                                            n_input=len(v.input), acls=acls))
        return time.perf_counter() - started
    finally:
        client.disconnect()


async def measure(target: Target, setup: dict[str, Any], values: dict[str, Any], raw: Any,
                  change: dict[str, Any] | None = None) -> tuple[float, float, float]:
    """(ours from empty, raw, ours for ``change``) in seconds."""
    target.start()
    try:
        ours_s, change_s = await ours(target, setup, values, change)
    finally:
        target.stop()
    target.start()
    try:
        raw_s = await asyncio.to_thread(raw, target)
    finally:
        target.stop()
    return ours_s, raw_s, change_s


async def main() -> None:
    agent_process_policy()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--poll-sleep-usec", type=int, default=0,
                        help="real VPP: main-loop nap between polls (0 = busy polling, as on a real node)")
    parser.add_argument("--only", choices=("all", "services"), default="all")
    args = parser.parse_args()
    target = Target()
    target.poll_sleep_usec = args.poll_sleep_usec
    svc_values, svc_change = services_values(args.services)
    nat_setup = {m.vrf_key(1): m.VrfTable(id=1, label="pod"), n.GLOBAL_KEY: n.Nat44Global()}
    svc_ours, svc_raw, svc_change_s = await measure(target, nat_setup, svc_values,
                                                    lambda t: raw_services(t, svc_values), svc_change)
    cnat_values, cnat_change = services_values(args.services, CnatServiceRenderer())
    cnat_ours, cnat_raw, cnat_change_s = await measure(target, {}, cnat_values,
                                                       lambda t: raw_cnat(t, cnat_values), cnat_change)
    services = {
        "target": target.name,
        "poll_sleep_usec": args.poll_sleep_usec if target.install is not None else None,
        "services_mappings": len(svc_values),
        "services_1k_s": round(svc_ours, 3), "services_raw_s": round(svc_raw, 3),
        "services_ratio": round(svc_raw / svc_ours, 3),
        "services_change_ms": round(svc_change_s * 1000, 2),
        "services_cnat_translations": len(cnat_values),
        "services_cnat_1k_s": round(cnat_ours, 3), "services_cnat_raw_s": round(cnat_raw, 3),
        "services_cnat_ratio": round(cnat_raw / cnat_ours, 3),
        "services_cnat_change_ms": round(cnat_change_s * 1000, 2),
    }
    if args.only == "services":
        emit(services, args.json)
        return
    pol_setup, pol_values, pol_render = pods_and_policies(args.pods, args.policies)
    pol_ours, pol_raw, _ = await measure(target, pol_setup, pol_values,
                                         lambda t: raw_policy(t, pol_setup, pol_values))
    eg_setup, eg_values, eg_render = pods_and_policies(args.pods, args.policies, egress=True)
    eg_ours, eg_raw, _ = await measure(target, eg_setup, eg_values, lambda t: raw_policy(t, eg_setup, eg_values))
    results = {
        **services,
        "policy_values": len(pol_values),
        "policy_1k_s": round(pol_ours, 3), "policy_raw_s": round(pol_raw, 3),
        "policy_ratio": round(pol_raw / pol_ours, 3),
        "policy_render_s": round(pol_render, 3),
        "policy_egress_values": len(eg_values),
        "policy_egress_s": round(eg_ours, 3), "policy_egress_raw_s": round(eg_raw, 3),
        "policy_egress_ratio": round(eg_raw / eg_ours, 3),
        "policy_egress_render_s": round(eg_render, 3),
    }
    emit(results, args.json)


if __name__ == "__main__":
    asyncio.run(main())
