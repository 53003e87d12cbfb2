"""The agent's process-wide policy: the ``process`` plugin sets it (apps/vswitch/process.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from apps.vswitch.process import ProcessConfig, ProcessPlugin
from core import tuning


async def test_the_process_plugin_sets_the_agents_policy_and_the_default_config_enables_it() -> None:
    default = yaml.safe_load((Path(__file__).resolve().parents[3] / "apps" / "vswitch" / "default.yaml").read_text())
    assert default["plugins"][0] == "process"
    plugin = ProcessPlugin(ProcessConfig(heap_trim=False, gc_promote_after=10))
    await plugin.init()
    try:
        assert tuning.current() == tuning.ProcessTuning(gc_pause=True, gc_promote_after=10, heap_trim=False)
    finally:
        await plugin.close()
    assert tuning.current() == tuning.ProcessTuning()
