"""Fuzzing a real agent: the CNI binary's stdin and environment, the gRPC request fields
(hypothesis), and the REST API from its OpenAPI description (schemathesis).

Promises: no crash (the agent keeps running, the binary always answers JSON), every error is
the CNI specification's error JSON (or, over REST, an HTTP 4xx), and no rejected request
changes any state (no pod record, no allocation, no interface).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.podmanager.cni_pb2 import CNIReply, CNIRequest
from tests.e2e.testbed import NodeTestbed, in_ns, sh
from tests.reliability import report

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CODES = {1, 2, 3, 4, 5, 6, 7, 11, 100, 101, 102, 999}


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeTestbed]:
    testbed = NodeTestbed(tmp_path_factory.mktemp("fuzz"), prefix="wrf")
    testbed.start()
    try:
        yield testbed
    finally:
        testbed.close()


def state(bed: NodeTestbed) -> tuple[Any, ...]:
    """Everything a rejected request must leave alone."""
    allocations = bed.http_json("/contiv/v1/ipam/allocations")["allocations"]
    links = sh("ip", "-n", bed.node_ns, "-o", "link").stdout.count("\n")
    return bed.records(), allocations, links


def assert_alive(bed: NodeTestbed) -> None:
    alive = bed.agent is not None and bed.agent.poll() is None
    report.add(crashes=0 if alive else 1)
    assert alive, bed.agent_log()


text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=40)
versions = st.sampled_from(["0.3.1", "0.4.0", "1.0.0", "0.2.0", "", "1.1.0"]) | text
configs = st.fixed_dictionaries(
    {}, optional={
        "cniVersion": versions, "name": text, "type": text, "grpcServer": text,
        "ipam": st.dictionaries(text, text, max_size=2) | text,
        "prevResult": st.dictionaries(text, st.lists(st.dictionaries(text, text, max_size=2),
                                                     max_size=2), max_size=3),
    })
stdins = (configs.map(json.dumps) | text | st.binary(max_size=60).map(
    lambda b: b.decode("latin-1")))
envs = st.fixed_dictionaries(
    {"CNI_COMMAND": st.sampled_from(["ADD", "DEL", "CHECK", "VERSION", "", "GC"]) | text},
    optional={
        "CNI_CONTAINERID": text, "CNI_IFNAME": text, "CNI_ARGS": text, "CNI_PATH": text,
        # Never an existing namespace: an ADD must fail, a DEL finds no container.
        "CNI_NETNS": st.sampled_from(["/var/run/netns/wrf-missing", "", "relative"]) | text,
    })


@FUZZ
@given(stdin=stdins, env=envs)
def test_cni_binary_stdin_and_environment(bed: NodeTestbed, stdin: str, env: dict[str, str]) -> None:
    before = state(bed)
    env = {k: v for k, v in env.items() if "\x00" not in v}
    conf = stdin
    if stdin.startswith("{") and "grpcServer" not in stdin:
        # Point well-formed configs at the agent, so that calls get that far.
        try:
            doc = json.loads(stdin)
            doc["grpcServer"] = str(bed.socket_path)
            conf = json.dumps(doc)
        except ValueError:
            pass
    launcher = bed.workdir / "bin" / "contiv-cni"
    out = subprocess.run(
        ["ip", "netns", "exec", bed.node_ns, "env", "-i", *(f"{k}={v}" for k, v in env.items()),
         str(launcher)], input=conf.encode("utf-8", "surrogateescape"), capture_output=True,
        timeout=120,
    )
    report.add(fuzz_cases=1)
    assert out.returncode in (0, 1), out
    assert b"Traceback" not in out.stderr, out.stderr
    if out.returncode == 0 and not out.stdout.strip():
        # A successful DEL (or CHECK) prints nothing; ADD cannot succeed here.
        assert env["CNI_COMMAND"] in ("DEL", "CHECK"), (env, out)
        assert state(bed) == before
        assert_alive(bed)
        return
    doc = json.loads(out.stdout)
    assert isinstance(doc, dict)
    if out.returncode == 1:
        assert set(doc) <= {"cniVersion", "code", "msg", "details"}, doc
        assert doc["code"] in CODES and isinstance(doc["msg"], str) and doc["msg"]
    elif env["CNI_COMMAND"] == "VERSION":
        assert doc["supportedVersions"] == ["0.3.1", "0.4.0", "1.0.0"]
    else:
        assert env["CNI_COMMAND"] == "DEL", (env, doc)  # ADD/CHECK cannot succeed here
    assert state(bed) == before
    assert_alive(bed)


requests = st.builds(
    CNIRequest, version=versions, container_id=text, network_namespace=st.sampled_from(
        ["/var/run/netns/wrf-missing", ""]) | text, interface_name=text,
    extra_nw_config=stdins, extra_arguments=text | st.just("K8S_POD_NAME=a;K8S_POD_NAMESPACE=b"),
    ipam_type=text, cni_path=text, cni_invocation=st.booleans(),
)


@FUZZ
@given(method=st.sampled_from(["Add", "Delete", "Check"]), request=requests)
def test_grpc_request_fields(bed: NodeTestbed, method: str, request: CNIRequest) -> None:
    before = state(bed)
    with grpc.insecure_channel(f"unix:{bed.socket_path}") as channel:
        rpc = channel.unary_unary(f"/contiv.cni.RemoteCNI/{method}",
                                  request_serializer=CNIRequest.SerializeToString,
                                  response_deserializer=CNIReply.FromString)
        reply = rpc(request, timeout=60)  # the service never fails an RPC
    report.add(fuzz_cases=1)
    if method == "Delete" and reply.result == 0:
        pass  # unknown container: DEL is idempotent
    else:
        assert reply.result in CODES, reply
        assert reply.error, reply
    assert state(bed) == before
    assert_alive(bed)


def test_rest_api_from_its_openapi(bed: NodeTestbed) -> None:
    tool = shutil.which("schemathesis") or shutil.which("st")
    if tool is None:
        pytest.fail("schemathesis is not installed (setup.cfg test extra)")
    before = state(bed)
    spec = bed.http_json("/openapi.json")
    assert spec["paths"]
    out = in_ns(bed.node_ns, tool, "run", f"http://127.0.0.1:{9999}/openapi.json",
                "--checks", "not_a_server_error", "--max-examples", str(max(5, EXAMPLES // 4)),
                check=False, timeout=600)
    report.add(fuzz_cases=1)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    # Every operation, the mutating ones (resyncs, log levels) included, was exercised.
    operations = sum(len(methods) for methods in spec["paths"].values())
    assert f"Tested: {operations}" in out.stdout, out.stdout[-2000:]
    assert state(bed) == before
    assert_alive(bed)
