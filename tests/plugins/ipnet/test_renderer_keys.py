"""Renderers derive keys from the models, never from descriptors built at import time
(defect 7 of issue 11); the model keys are exactly the descriptors' keys."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from pydantic import BaseModel

from plugins.linux import models as lx
from plugins.linux.descriptors.offload import LinkOffload
from plugins.linux.plugin import linux_descriptors

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import gc
import plugins.ipnet.renderer.linux, plugins.ipnet.renderer.vpp, plugins.ipnet.renderer.vpp_stn
import plugins.service.renderer.nftables
from plugins.kvscheduler.api import Descriptor
from plugins.linux.netns import NetlinkPool
print(sum(isinstance(o, (Descriptor, NetlinkPool)) for o in gc.get_objects()))
"""


def test_importing_the_renderers_builds_no_descriptor_and_no_netlink_pool() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "0", out.stderr


def test_model_keys_are_the_descriptors_keys() -> None:
    end1 = lx.VethEnd(namespace="pod", ifname="eth0")
    end2 = lx.VethEnd(namespace="", ifname="cv1234")
    samples: list[BaseModel] = [
        lx.Veth(name="pod-veth", end1=end1, end2=end2),
        lx.Vxlan(namespace="node", ifname="contiv-vxlan", vni=10, local=IPv4Address("192.0.2.1")),
        lx.InterfaceAddress(namespace="/proc/1/ns/net", ifname="eth0", address=IPv4Interface("10.1.1.2/32")),
        lx.Route(namespace="pod", dst=IPv4Network("0.0.0.0/0"), gateway=IPv4Address("10.1.1.1"), metric=5),
        lx.Neighbour(ifname="cv1234", ip=IPv4Address("10.1.1.2"), mac="02:00:00:00:00:01"),
        lx.FdbEntry(ifname="contiv-vxlan", mac="02:00:00:00:00:02", dst=IPv4Address("192.0.2.2")),
        lx.Sysctl(name="net.ipv4.ip_forward", value="1"),
        LinkOffload(namespace="pod", ifname="eth0", tx_checksum=False),
    ]
    by_model = {d.model: d for d in linux_descriptors()}
    for value in samples:
        assert lx.value_key(value) == by_model[type(value)].key_of(value), type(value).__name__
