"""The worked example in docs/kvscheduler.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[3] / "docs" / "kvscheduler.md"


async def test_worked_example_in_the_docs_runs() -> None:
    text = DOC.read_text()
    section = text[text.index("## 4. Worked example") : text.index("## 5.")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    namespace: dict[str, Any] = {"__name__": "kvscheduler_docs_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    await namespace["main"]()
