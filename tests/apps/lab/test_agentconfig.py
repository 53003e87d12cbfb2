"""``contiv-lab up --agent-config``: loading and merging the overlay (the lab test runs it for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.lab.agentconfig import AgentConfigError, load_overlay, merge


def test_mappings_merge_and_everything_else_replaces() -> None:
    base = {"plugins": ["a", "b"], "controller": {"handler_order": ["a"], "dbwatcher": {"x": 1}},
            "http": {"port": 9999}}
    overlay = {"plugins": ["a", "b", "c"], "controller": {"handler_order": ["a", "c"]}, "c": {"k": 1}}
    assert merge(base, overlay) == {
        "plugins": ["a", "b", "c"],
        "controller": {"handler_order": ["a", "c"], "dbwatcher": {"x": 1}},
        "http": {"port": 9999},
        "c": {"k": 1},
    }
    assert base["controller"] == {"handler_order": ["a"], "dbwatcher": {"x": 1}}  # untouched


def test_bad_files_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_overlay(empty) == {}
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(AgentConfigError, match=r"list.yaml: must be a mapping .* not list"):
        load_overlay(listed)
    broken = tmp_path / "broken.yaml"
    broken.write_text("plugins: [a\n")
    with pytest.raises(AgentConfigError, match=r"broken\.yaml: not valid YAML"):
        load_overlay(broken)
    with pytest.raises(AgentConfigError, match=r"missing\.yaml: cannot read it"):
        load_overlay(tmp_path / "missing.yaml")
