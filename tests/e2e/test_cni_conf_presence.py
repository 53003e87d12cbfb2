"""The agent owns the conflist's presence in the runtime's conf dir (issue 22): a real
``contiv-agent`` puts the staged conflist in place once it serves, removes it on SIGTERM (the
node then reports its network not ready), leaves it on SIGKILL (pods get "try again later"
until it is back) and puts it again when it starts without the installer running first."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.cni.install import conflist
from tests.e2e.testbed import NodeTestbed

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.timeout(300)]


class PresenceTestbed(NodeTestbed):
    """The testbed with the agent managing a conf dir of its own."""

    @property
    def staged(self) -> Path:
        return self.workdir / "lib" / "cni" / "10-contiv.conflist"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "net.d"

    def agent_config(self) -> dict[str, Any]:
        config = super().agent_config()
        config["podmanager"].update(staged_conflist=str(self.staged),
                                    cni_conf_dir=str(self.conf_dir))
        return config


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[PresenceTestbed]:
    testbed = PresenceTestbed(tmp_path, prefix="cnip")
    testbed.staged.parent.mkdir(parents=True)
    testbed.conf_dir.mkdir()
    testbed.staged.write_text(json.dumps(conflist(str(testbed.socket_path), "")))
    try:
        yield testbed
    finally:
        testbed.close()


def test_conflist_follows_the_agent(bed: PresenceTestbed) -> None:
    placed = bed.conf_dir / "10-contiv.conflist"
    assert not placed.exists()
    bed.start()
    assert placed.read_bytes() == bed.staged.read_bytes()
    assert sorted(p.name for p in bed.conf_dir.iterdir()) == ["10-contiv.conflist"]  # no temp file

    bed.kill_agent(signal.SIGTERM)  # graceful stop: the node's network is reported not ready
    assert not placed.exists()
    assert "removed: the node reports its network not ready" in bed.agent_log(200)

    bed.start_agent()  # a restart without the init container: the agent puts it back
    bed.wait_ready()
    assert placed.read_bytes() == bed.staged.read_bytes()

    bed.kill_agent(signal.SIGKILL)  # a crash: the agent is coming back, the conflist stays
    assert placed.read_bytes() == bed.staged.read_bytes()

    placed.unlink()  # what a restart must repair, whatever happened meanwhile
    bed.start_agent()
    bed.wait_ready()
    assert placed.read_bytes() == bed.staged.read_bytes()


def test_agent_leaves_the_conf_dir_alone_when_nothing_is_staged(bed: PresenceTestbed) -> None:
    bed.staged.unlink()
    bed.start()
    assert list(bed.conf_dir.iterdir()) == []
    assert "no staged CNI network configuration at" in bed.agent_log(200)
    bed.kill_agent(signal.SIGTERM)
    assert list(bed.conf_dir.iterdir()) == []
