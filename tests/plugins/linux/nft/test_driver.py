"""The nftables driver against real nftables inside throw-away namespaces (both backends)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from plugins.linux.nft.driver import Nft, NftError

pytestmark = pytest.mark.netns

SKELETON = """
table ip svctest {
  map be { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . tcp dport; }
  set fe { type ipv4_addr . inet_proto . inet_service; }
  map fe_verdict { type ipv4_addr . inet_proto . inet_service : verdict; }
  chain pick { }
  chain pre { type nat hook prerouting priority dstnat; policy accept;
    ip daddr . meta l4proto . th dport @fe \
      dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 1 map @be comment "r1"
    ip daddr . meta l4proto . th dport vmap @fe_verdict
  }
}
add element ip svctest fe { 10.96.0.1 . tcp . 80, 10.96.0.2 . udp . 53 }
add element ip svctest be { 10.96.0.1 . tcp . 80 . 0 : 10.1.1.2 . 8080 }
add element ip svctest fe_verdict { 10.96.0.3 . sctp . 9 : goto pick }
"""


def nft_cli(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(params=["lib", "cli"])
def nft(request: pytest.FixtureRequest, make_netns: Callable[[], str]) -> Nft:
    return Nft(make_netns(), backend=request.param)


def test_apply_then_read_back_structured(nft: Nft) -> None:
    assert nft.list_table("ip", "svctest") is None
    nft.apply(SKELETON)
    table = nft.list_table("ip", "svctest")
    assert table is not None
    pre = table.chains["pre"]
    assert (pre.type, pre.hook, pre.prio, pre.policy) == ("nat", "prerouting", -100, "accept")
    assert [r.comment for r in pre.rules] == ["r1", None]
    assert table.chains["pick"].hook is None
    assert table.sets["fe"].elements == {"10.96.0.1 . tcp . 80": "", "10.96.0.2 . udp . 53": ""}
    assert table.sets["be"].kind == "map"
    assert table.sets["be"].elements == {"10.96.0.1 . tcp . 80 . 0": "10.1.1.2 . 8080"}
    assert table.sets["fe_verdict"].elements == {"10.96.0.3 . sctp . 9": "goto pick"}
    assert nft.batches == 1


def test_a_failing_batch_changes_nothing(nft: Nft) -> None:
    nft.apply(SKELETON)
    before = nft.list_table("ip", "svctest")
    with pytest.raises(NftError, match=r"(?i)no such file|not exist|could not process"):
        nft.apply("add element ip svctest fe { 10.96.0.9 . tcp . 9 }\n"
                  "delete element ip svctest fe { 10.96.0.77 . tcp . 1 }\n")
    assert nft.list_table("ip", "svctest") == before
    with pytest.raises(NftError, match="invalid data type"):
        nft.apply("add element ip svctest fe { nonsense }")
    assert nft.batches == 1


def test_json_commands_and_delete_only_our_table(nft: Nft) -> None:
    nft.apply(SKELETON)
    nft.apply("table ip someone-else {\n chain c {\n }\n}\n")
    nft.apply([{"delete": {"element": {"family": "ip", "table": "svctest", "name": "fe",
                                       "elem": [{"concat": ["10.96.0.2", "udp", 53]}]}}},
               {"add": {"element": {"family": "ip", "table": "svctest", "name": "be",
                                    "elem": [[{"concat": ["10.96.0.1", "tcp", 80, 1]},
                                              {"concat": ["10.1.2.2", 8080]}]]}}}])
    table = nft.list_table("ip", "svctest")
    assert table is not None
    assert set(table.sets["fe"].elements) == {"10.96.0.1 . tcp . 80"}
    assert table.sets["be"].elements["10.96.0.1 . tcp . 80 . 1"] == "10.1.2.2 . 8080"
    assert nft.delete_table("ip", "svctest") is True
    assert nft.delete_table("ip", "svctest") is False
    assert "someone-else" in nft_cli(nft.netns, "list", "tables")


async def test_async_api_runs_in_the_namespace(nft: Nft) -> None:
    await nft.aapply(SKELETON)
    table = await nft.alist_table("ip", "svctest")
    assert table is not None and "10.96.0.1 . tcp . 80" in table.sets["fe"].elements
    # It is really in that namespace and nowhere else.
    assert "svctest" in nft_cli(nft.netns, "list", "tables")
    assert await Nft(nft.netns, nft.backend).alist_table("ip", "nope") is None


def test_bad_backend() -> None:
    with pytest.raises(ValueError, match="backend 'x'"):
        Nft("", backend="x")
