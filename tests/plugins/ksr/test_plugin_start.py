"""KSR fails its start with a clear message when its source cannot work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from plugins.ksr.config import KSRConfig
from plugins.ksr.plugin import KSRPlugin


async def test_missing_source_dir_or_kubeconfig_fail_init(tmp_path: Path) -> None:
    kvdb = KVDBPlugin(KVDBConfig(backend="memory"))
    await kvdb.init()
    ksr = KSRPlugin(KSRConfig(source="dir", source_dir=tmp_path / "missing"), kvdb=kvdb)
    with pytest.raises(FileNotFoundError, match=r"ksr\.source_dir .*missing is not a directory"):
        await ksr.init()
    ksr = KSRPlugin(KSRConfig(kubeconfig=tmp_path / "nope.yaml"), kvdb=kvdb)
    with pytest.raises(FileNotFoundError, match=r"kubeconfig .*nope\.yaml does not exist"):
        await ksr.init()


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValidationError, match="source_dir is required"):
        KSRConfig(source="dir")
    with pytest.raises(ValidationError, match="endpoints_source"):
        KSRConfig(endpoints_source="both")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="backoff_max_s"):
        KSRConfig(backoff_initial_s=2, backoff_max_s=1)


async def test_memory_backend_without_election(tmp_path: Path) -> None:
    """The embedded store works too (single process, no election): the lab's set-up."""
    (tmp_path / "n.yaml").write_text("kind: Node\nmetadata: {name: n1}\n")
    kvdb = KVDBPlugin(KVDBConfig(backend="memory"))
    await kvdb.init()
    ksr = KSRPlugin(KSRConfig(source="dir", source_dir=tmp_path, leader_election=False), kvdb=kvdb)
    await ksr.init()
    await ksr.after_init()
    try:
        for _ in range(200):
            if await kvdb.broker.get("/vnf-agent/contiv-ksr/k8s/node/n1") is not None:
                break
            await asyncio.sleep(0.02)
        kv = await kvdb.broker.get("/vnf-agent/contiv-ksr/k8s/node/n1")
        assert kv is not None and b'"name":"n1"' in kv.value
        assert ksr.is_leader and ksr.elector is None
    finally:
        await ksr.close()
        await kvdb.close()
