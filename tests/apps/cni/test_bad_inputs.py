"""A table of bad inputs: each gets the specification's error JSON, a non-zero exit, no change."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from plugins.podmanager.cnicodes import CNICode
from tests.apps.cni.conftest import Agent, Namespaces, run
from tests.apps.cni.helpers import exec_cni, netconf, pod_env

pytestmark = pytest.mark.netns

GOOD = object()  # placeholder: the test substitutes a working value


def case(
    label: str, code: int, text: str, command: str | None = "ADD",
    conf: Any = GOOD, env: dict[str, str | None] | None = None,
) -> Any:
    return pytest.param(command, conf, env or {}, code, text, id=label)


CASES = [
    case("bad-json", CNICode.DECODE_FAILURE, "not valid JSON", conf=b"{not json"),
    case("not-an-object", CNICode.DECODE_FAILURE, "JSON object", conf=b"[1, 2]"),
    case("no-version", CNICode.INVALID_NETWORK_CONFIG, "cniVersion",
         conf={"name": "n", "type": "contiv-cni"}),
    case("unknown-version", CNICode.INCOMPATIBLE_VERSION, "'0.2.0' is not supported",
         conf={"cniVersion": "0.2.0", "name": "n"}),
    case("future-version", CNICode.INCOMPATIBLE_VERSION, "'9.9.9' is not supported",
         conf={"cniVersion": "9.9.9", "name": "n"}),
    case("no-name", CNICode.INVALID_NETWORK_CONFIG, "'name'", conf={"cniVersion": "1.0.0"}),
    case("bad-grpc-server", CNICode.INVALID_NETWORK_CONFIG, "grpcServer",
         conf={"cniVersion": "1.0.0", "name": "n", "grpcServer": 5}),
    case("delegated-ipam", CNICode.UNSUPPORTED_FIELD, "ipam.type='host-local'",
         conf={"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local"}}),
    case("no-command", CNICode.INVALID_ENVIRONMENT, "CNI_COMMAND is not set", command=None),
    case("unknown-command", CNICode.INVALID_ENVIRONMENT, "'UPDATE' is not one of",
         command="UPDATE"),
    case("no-container-id", CNICode.INVALID_ENVIRONMENT, "CNI_CONTAINERID is not set",
         env={"CNI_CONTAINERID": None}),
    case("bad-container-id", CNICode.INVALID_ENVIRONMENT, "CNI_CONTAINERID '../x' is invalid",
         env={"CNI_CONTAINERID": "../x"}),
    case("no-ifname", CNICode.INVALID_ENVIRONMENT, "CNI_IFNAME is not set",
         env={"CNI_IFNAME": None}),
    case("long-ifname", CNICode.INVALID_ENVIRONMENT, "not a valid name",
         env={"CNI_IFNAME": "a-very-long-interface-name"}),
    case("no-netns", CNICode.INVALID_ENVIRONMENT, "CNI_NETNS is not set",
         env={"CNI_NETNS": None}),
    case("bad-netns-path", CNICode.INVALID_ENVIRONMENT, "/var/run/netns/cnit-nope does not exist",
         env={"CNI_NETNS": "/var/run/netns/cnit-nope"}),
    case("no-cni-path", CNICode.INVALID_ENVIRONMENT, "CNI_PATH is not set",
         env={"CNI_PATH": None}),
    case("no-pod-name", CNICode.INVALID_ENVIRONMENT, "K8S_POD_NAME",
         env={"CNI_ARGS": "K8S_POD_NAMESPACE=default"}),
    case("check-without-prev-result", CNICode.INVALID_NETWORK_CONFIG, "prevResult",
         command="CHECK"),
    case("check-on-0.3.1", CNICode.INCOMPATIBLE_VERSION, "CHECK is not supported",
         command="CHECK", conf={"cniVersion": "0.3.1", "name": "n", "prevResult": {}}),
    case("check-unknown-container", CNICode.UNKNOWN_CONTAINER, "has no pod on this node",
         command="CHECK", conf={"cniVersion": "1.0.0", "name": "n", "prevResult": {}}),
]


@pytest.mark.parametrize(("command", "conf", "env", "code", "text"), CASES)
async def test_bad_input(
    cni_bin: Path, agent: Agent, namespaces: Namespaces,
    command: str | None, conf: Any, env: dict[str, str | None], code: int, text: str,
) -> None:
    pod_ns = namespaces.create("pod")
    links_before = run("ip", "-n", agent.node, "-o", "link").stdout
    full_env: dict[str, str | None] = {
        **pod_env(uuid.uuid4().hex, f"/var/run/netns/{pod_ns}", "web"), **env
    }
    if conf is GOOD:
        conf = netconf("1.0.0", agent.socket)
    elif isinstance(conf, dict):
        conf = {"grpcServer": agent.socket, **conf}
    out = await exec_cni(cni_bin, command, conf, full_env)
    assert out.status == 1
    assert set(out.output) <= {"cniVersion", "code", "msg", "details"}
    assert out.output["code"] == code, out.output
    assert text in out.output["msg"], out.output
    assert out.output["cniVersion"] in ("0.3.1", "0.4.0", "1.0.0")
    # Nothing changed: no event, no record, no link.
    assert agent.controller.events == []
    assert agent.plugin.local_pods() == {}
    assert run("ip", "-n", agent.node, "-o", "link").stdout == links_before
    assert run("ip", "-n", pod_ns, "-o", "link").stdout.count("\n") == 1  # lo only


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
async def test_agent_down_is_try_again_later(
    cni_bin: Path, namespaces: Namespaces, tmp_path: Path, command: str
) -> None:
    pod_ns = namespaces.create("pod")
    env = pod_env(uuid.uuid4().hex, f"/var/run/netns/{pod_ns}", "web")
    missing = tmp_path / "absent.sock"
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))  # what a killed agent leaves: a socket file nobody listens on
    sock.close()
    for path in (missing, stale):
        conf = netconf("1.0.0", str(path), prevResult={"cniVersion": "1.0.0"})
        out = await exec_cni(cni_bin, command, conf, env)
        assert out.status == 1
        assert out.output["code"] == CNICode.TRY_AGAIN_LATER, out.output
        assert "not reachable" in out.output["msg"] and str(path) in out.output["msg"]
    assert not (tmp_path / "pending-del").exists()
