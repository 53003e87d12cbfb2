"""Code that had no user is gone and stays gone (item 11 of issue 11)."""

from __future__ import annotations

from pathlib import Path

import plugins.controller.plugin as controller_plugin
import plugins.kvscheduler.api as scheduler_api

ROOT = Path(__file__).resolve().parents[2]


def test_unused_api_and_generated_stubs_are_gone() -> None:
    assert not hasattr(controller_plugin.ControllerPlugin, "register_config_model")
    assert not hasattr(scheduler_api, "MetadataReader")
    assert not list(ROOT.glob("plugins/*/*_pb2_grpc.py"))


def test_test_helpers_live_under_tests() -> None:
    assert not (ROOT / "apps" / "cni" / "testbed.py").exists()
    assert (ROOT / "tests" / "e2e" / "testbed.py").exists()
