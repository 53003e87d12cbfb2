"""Pooled libnftables contexts: reused per namespace, never across namespaces, closed when idle
or after a failed batch (real libnftables, real namespaces)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

import plugins.linux.nft.driver as nftmod
from plugins.linux.netns import namespace_path, run_in_namespace
from plugins.linux.nft.contexts import ContextPool, context_factory
from plugins.linux.nft.driver import Nft, NftError, _library, _pool

pytestmark = pytest.mark.netns


def inode_of(ns: str) -> int:
    path = namespace_path(ns)
    assert path is not None
    return os.stat(path).st_ino


def test_batches_reuse_a_context_of_their_own_namespace(make_netns: Callable[[], str]) -> None:
    a, b = make_netns(), make_netns()
    pool = _pool()
    Nft(a).apply("add table ip ctxa\nadd set ip ctxa s { type ipv4_addr; }\n")
    Nft(b).apply("add table ip ctxb\nadd set ip ctxb s { type ipv4_addr; }\n")
    assert pool.idle_count(inode_of(a)) == 1 and pool.idle_count(inode_of(b)) == 1
    for k in range(5):  # deletes included: the batches that made a fresh context's close wait
        Nft(a).apply(f"add element ip ctxa s {{ 10.0.0.{k} }}\n")
        Nft(a).apply(f"delete element ip ctxa s {{ 10.0.0.{k} }}\nadd element ip ctxa s {{ 10.0.1.{k} }}\n")
    assert pool.idle_count(inode_of(a)) == 1  # one context, reused by every batch
    # Each namespace's context writes into its own namespace only.
    assert Nft(a).list_table("ip", "ctxb") is None and Nft(b).list_table("ip", "ctxa") is None
    found = Nft(a).list_table("ip", "ctxa")
    assert found is not None and sorted(found.sets["s"].elements) == [f"10.0.1.{k}" for k in range(5)]


def test_a_failed_batch_closes_its_context(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    nft, pool = Nft(ns), _pool()
    nft.apply("add table ip ctxf\nadd set ip ctxf s { type ipv4_addr; }\n")
    assert pool.idle_count(inode_of(ns)) == 1
    with pytest.raises(NftError, match="No such file or directory"):
        nft.apply("delete element ip ctxf s { 10.9.9.9 }\n")
    assert pool.idle_count(inode_of(ns)) == 0
    nft.apply("add element ip ctxf s { 10.9.9.9 }\n")  # a new context, and it works
    found = nft.list_table("ip", "ctxf")
    assert found is not None and list(found.sets["s"].elements) == ["10.9.9.9"]
    assert pool.idle_count(inode_of(ns)) == 1


def test_idle_contexts_are_closed_by_the_reaper(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    pool = ContextPool(*context_factory(_library()), idle_s=0.2)
    inode, ctx = run_in_namespace(ns, pool.acquire)
    assert inode == inode_of(ns)
    pool.release(inode, ctx)
    assert pool.idle_count(inode) == 1
    deadline = time.monotonic() + 60  # generous: the reaper runs every 0.1 s
    while pool.idle_count(inode) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.idle_count(inode) == 0


def test_release_idle_contexts_closes_them_now(make_netns: Callable[[], str]) -> None:
    ns = make_netns()
    Nft(ns).apply("add table ip ctxr\n")
    assert _pool().idle_count(inode_of(ns)) == 1
    assert nftmod.release_idle_contexts() >= 1
    assert _pool().idle_count(inode_of(ns)) == 0
