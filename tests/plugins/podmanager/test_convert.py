"""Parsing CNI_ARGS and prevResult; building replies from results."""

from __future__ import annotations

import pytest

from plugins.podmanager.api import PodID
from plugins.podmanager.cnicodes import CNICode, CNIError
from plugins.podmanager.convert import (
    parse_cni_args,
    pod_id_from_args,
    reply_from_result,
    result_from_prev_result,
)
from plugins.podmanager.records import PodResult, RecordedInterface, RecordedIP


def test_cni_args() -> None:
    raw = "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns-0;X=a=b"
    assert parse_cni_args(raw)["X"] == "a=b"
    assert pod_id_from_args(raw) == PodID("dns-0", "kube-system")
    assert parse_cni_args("") == {}
    with pytest.raises(CNIError, match="'oops' is not of the form"):
        parse_cni_args("A=1;oops")
    with pytest.raises(CNIError, match="lacks K8S_POD_NAME and K8S_POD_NAMESPACE") as err:
        pod_id_from_args("A=1")
    assert err.value.code == CNICode.INVALID_ENVIRONMENT


@pytest.mark.parametrize("legacy", [True, False])
def test_prev_result_layouts(legacy: bool) -> None:
    ip = {"address": "10.1.1.5/32", "gateway": "10.1.1.1", "interface": 1}
    if legacy:
        ip["version"] = "4"
    prev = {
        "cniVersion": "0.4.0" if legacy else "1.0.0",
        "interfaces": [{"name": "tap1"}, {"name": "eth0", "sandbox": "/var/run/netns/p"}],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}],
    }
    result = result_from_prev_result(prev)
    assert result.ip_addresses == [RecordedIP(address="10.1.1.5/32", gateway="10.1.1.1",
                                              interface=1)]
    assert result.interfaces[1].sandbox == "/var/run/netns/p"
    assert [(r.dst, r.gw) for r in result.routes] == [("0.0.0.0/0", "10.1.1.1")]


@pytest.mark.parametrize(
    ("prev", "text"),
    [
        ([], "JSON object"),
        ({"ips": "x"}, "prevResult.ips must be a list"),
        ({"ips": [{"gateway": "1.1.1.1"}]}, "malformed"),
        ({"interfaces": [{}]}, "malformed"),
    ],
)
def test_bad_prev_result(prev: object, text: str) -> None:
    with pytest.raises(CNIError, match=text) as err:
        result_from_prev_result(prev)
    assert err.value.code == CNICode.INVALID_NETWORK_CONFIG


def test_reply_rejects_address_of_missing_interface() -> None:
    result = PodResult(
        interfaces=[RecordedInterface(name="eth0")],
        ip_addresses=[RecordedIP(address="fd00::5/128", interface=3)],
    )
    with pytest.raises(CNIError, match="interface #3"):
        reply_from_result(result)
    result.ip_addresses[0].interface = 0
    reply = reply_from_result(result)
    assert reply.interfaces[0].ip_addresses[0].version == 1  # IPV6
