"""The YAML-directory source, alone and reflecting into a real etcd."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml

from core.kvdb.etcd import EtcdBroker
from plugins.ksr import keys as ks
from plugins.ksr.dir_source import DirSource, ManifestError, parse_manifest
from plugins.ksr.source import Changed, Relisted, SourceItem
from tests.plugins.ksr import helpers as h
from tests.plugins.ksr.conftest import RunKSR


def _write(path: Path, *docs: object) -> None:
    path.write_text(yaml.safe_dump_all(docs))
    # Make the change visible even within one mtime tick.
    stamp = path.stat().st_mtime_ns + 10_000_000
    os.utime(path, ns=(stamp, stamp))


def test_parse_manifest_multi_document_lists_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    pod_without_ns = h.pod("a")
    del pod_without_ns["metadata"]["namespace"]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    _write(path, h.node("n1"), {"kind": "List", "items": [pod_without_ns, deployment]}, None)
    parsed = parse_manifest(path)
    assert [k for k, _ in parsed] == ["node", "pod"]
    assert parsed[1][1]["metadata"]["namespace"] == "default"
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Pod\n  metadata: [unclosed\n")
    with pytest.raises(ManifestError, match=r"bad\.yaml"):
        parse_manifest(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ManifestError, match="not an object"):
        parse_manifest(scalar)


async def test_source_reports_changes_and_keeps_content_of_broken_files(tmp_path: Path) -> None:
    _write(tmp_path / "pods.yaml", h.pod("a"), h.pod("b"))
    _write(tmp_path / "nodes.yml", h.node("n1"))
    items: list[tuple[str, SourceItem]] = []
    source = DirSource(tmp_path, poll_interval_s=0.05)
    await source.start(["pod", "node"], lambda k, i: items.append((k, i)))
    try:
        relisted = {k: i for k, i in items if isinstance(i, Relisted)}
        assert sorted(o["metadata"]["name"] for o in relisted["pod"].objects) == ["a", "b"]
        assert [o["metadata"]["name"] for o in relisted["node"].objects] == ["n1"]
        items.clear()
        _write(tmp_path / "pods.yaml", h.pod("a", ip="10.1.1.9"), h.pod("c"))
        await h.wait_for(lambda: _ready(len(items) >= 3), 5, "three pod changes")
        changes = sorted((i.type, i.object["metadata"]["name"]) for _, i in items if isinstance(i, Changed))
        assert changes == [("ADDED", "c"), ("DELETED", "b"), ("MODIFIED", "a")]
        items.clear()
        (tmp_path / "pods.yaml").write_text("kind: Pod\nmetadata: {name: [broken\n")
        os.utime(tmp_path / "pods.yaml", ns=(1, 1))
        await h.wait_for(lambda: _ready(source.errors == 1), 5, "the parse error")
        await asyncio.sleep(0.2)
        assert items == []  # nothing deleted because of a broken file
        (tmp_path / "nodes.yml").unlink()
        await h.wait_for(lambda: _ready(len(items) == 1), 5, "the node deletion")
        assert items[0][0] == "node" and isinstance(items[0][1], Changed) and items[0][1].type == "DELETED"
    finally:
        await source.stop()


async def _ready(value: bool) -> bool:
    return value


async def test_missing_directory_fails_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        await DirSource(tmp_path / "nope").start(["pod"], lambda k, i: None)


async def test_directory_reflected_into_etcd_and_followed(
    tmp_path: Path, broker: EtcdBroker, run_ksr: RunKSR
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    _write(manifests / "ns.yaml", h.namespace("default"))
    _write(manifests / "nodes.yaml", h.node("node1", "192.168.16.1"), h.node("node2", "192.168.16.2"))
    _write(manifests / "apps.yaml", h.pod("web-1"), h.service("web"), h.endpointslice("web-x", "web", ["10.1.1.2"]))
    nameless = h.pod("x")
    del nameless["metadata"]["name"]
    _write(manifests / "bad.yaml", nameless, h.policy("allow-db"))
    async with run_ksr(source="dir", source_dir=manifests, dir_poll_interval_s=0.1) as ksr:
        node = await h.wait_stored(broker, ks.node_key("node2"), lambda v: v is not None)
        assert node is not None and node["addresses"][0]["address"] == "192.168.16.2"  # status reflected
        pod = await h.wait_stored(broker, ks.pod_key("web-1", "default"), lambda v: v is not None)
        assert pod is not None and pod["ip_address"] == "10.1.1.2"
        assert await h.stored(broker, ks.policy_key("allow-db", "default")) is not None
        assert ksr.stats["pod"].arg_errors == 1  # the nameless pod, skipped
        # Edited while running.
        _write(manifests / "apps.yaml", h.pod("web-1", ip="10.1.1.77"), h.service("web"))
        await h.wait_stored(
            broker, ks.pod_key("web-1", "default"), lambda v: v is not None and v["ip_address"] == "10.1.1.77"
        )
        await h.wait_stored(broker, ks.endpointslice_key("web-x", "default"), lambda v: v is None)
        (manifests / "nodes.yaml").unlink()
        await h.wait_stored(broker, ks.node_key("node1"), lambda v: v is None)
        assert await h.ksr_keys(broker, "service") == {ks.service_key("web", "default")}
