"""This node's dataplane address from ``ipam.node_ip`` (the chart passes the kubelet's InternalIP):
the interface holding it gives the prefix; nothing holding it is a clear error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.plugins.linux.conftest import ip

pytestmark = pytest.mark.netns

PROBE = """
import asyncio, sys
from plugins.ipam.api import IPAMError
from plugins.ipam.config import IPAMConfig
from plugins.ipam.nodeaddr import dataplane_address
cfg = IPAMConfig.model_validate({"node_ip": sys.argv[1], "state_file": "/nonexistent/x.json"})
try:
    print(asyncio.run(dataplane_address(cfg, None)))
except IPAMError as err:
    print("error:", err)
"""


def address_in(ns: str, node_ip: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, node_ip],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_node_ip_takes_the_prefix_of_the_interface_holding_it(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    ip("link", "add", "nic0", "type", "veth", "peer", "name", "nic1", ns=ns)
    ip("addr", "add", "10.20.0.5/16", "dev", "nic0", ns=ns)
    ip("addr", "add", "172.18.3.9/22", "dev", "nic0", ns=ns)
    assert address_in(ns, "172.18.3.9") == "172.18.3.9/22"
    assert address_in(ns, "10.20.0.5") == "10.20.0.5/16"
    missing = address_in(ns, "10.20.0.6")
    assert missing.startswith("error:") and "10.20.0.6" in missing and "ipam.node_ip" in missing


def test_a_bad_node_ip_fails_validation_naming_the_key() -> None:
    from pydantic import ValidationError

    from plugins.ipam.config import IPAMConfig

    with pytest.raises(ValidationError, match="node_ip"):
        IPAMConfig.model_validate({"node_ip": "not-an-address"})
