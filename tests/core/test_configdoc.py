"""Settings are documented where they are declared: every field of every built-in plugin."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from pydantic import BaseModel

from core.configdoc import APPS, main
from core.di import builtin_plugins


def undocumented(model: type[BaseModel], prefix: str) -> list[str]:
    missing = []
    for name, field in model.model_fields.items():
        if not field.description:
            missing.append(prefix + name)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            missing += undocumented(ann, f"{prefix}{name}.")
    return missing


@pytest.mark.parametrize("module", APPS)
def test_every_setting_has_a_docstring(module: str) -> None:
    spec = importlib.import_module(module).SPEC
    missing = []
    for name, (_, cls) in builtin_plugins(spec.container).items():
        missing += undocumented(cls.Config, f"{name}.")
    assert missing == []


def test_reference_is_generated(capsys: pytest.CaptureFixture[str]) -> None:
    main()
    out = capsys.readouterr().out
    assert "## contiv-agent" in out and "| `endpoints` | list |" in out


def test_docs_config_md_is_the_generator_output(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/config.md is exactly what the generator prints (it was missing whole sections)."""
    main()
    generated = capsys.readouterr().out
    committed = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    assert committed == generated, (
        "docs/config.md is stale: regenerate it with `python -m core.configdoc > docs/config.md`"
    )
