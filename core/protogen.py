"""Regenerate a plugin's protobuf modules from its ``.proto`` (a developer tool, not run time).

Runs grpcio-tools' protoc from the repository root (so the modules import each other by their
package path) with ``--python_out`` and ``--pyi_out`` only: the servers register their servicers
with generic handlers and the CNI binary speaks the wire format itself, so ``*_pb2_grpc.py``
stubs would have no user. The generated files are marked so that ruff and mypy skip them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# ruff: noqa\n# mypy: ignore-errors\n"


def regenerate(proto: str) -> int:
    """Regenerate the ``_pb2`` modules of ``proto`` (a path relative to the repository root)."""
    from grpc_tools import protoc  # type: ignore[import-untyped,unused-ignore]  # dev dep

    source = ROOT / proto
    status = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={ROOT}", f"--pyi_out={ROOT}", str(source)])
    if status != 0:
        print(f"protoc failed with status {status}", file=sys.stderr)
        return int(status)
    for suffix in ("_pb2.py", "_pb2.pyi"):
        path = source.with_name(source.stem + suffix)
        text = path.read_text(encoding="utf-8")
        if not text.startswith(HEADER):
            path.write_text(HEADER + text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0
