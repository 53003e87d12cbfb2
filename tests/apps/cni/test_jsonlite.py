"""The binary's JSON (``_json`` without :mod:`json`'s imports) against :mod:`json` itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.cni import jsonlite

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_dumps_is_json_dumps(value: Any) -> None:
    assert jsonlite.dumps(value) == json.dumps(value)


@given(values, st.sampled_from(["", " ", "\n\t "]))
def test_loads_is_json_loads(value: Any, space: str) -> None:
    text = space + json.dumps(value, indent=1) + space
    assert jsonlite.loads(text) == json.loads(text)


@given(st.text(max_size=30))
def test_loads_rejects_what_json_rejects(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            jsonlite.loads(text)
    else:
        assert jsonlite.loads(text) == expected or expected != expected  # NaN


def test_the_binary_does_not_import_json_re_enum_or_socket() -> None:
    """What the launcher runs (``-IS``, this checkout first on the path)."""
    repo = Path(__file__).resolve().parents[3]
    code = (f"import sys; sys.path.insert(0, {str(repo)!r}); import apps.cni.main, "
            "apps.cni.client; print(sorted({'json', 're', 'enum', 'socket'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
