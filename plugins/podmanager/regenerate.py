"""Regenerate the gRPC/protobuf modules from ``cni.proto``: ``python -m plugins.podmanager.regenerate``.

Runs grpcio-tools' protoc from the repository root (so the modules import each other as
``plugins.podmanager.*``) and marks the generated files so that ruff and mypy skip them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = "plugins/podmanager/cni.proto"
#: No ``*_pb2_grpc.py``: the agent registers its servicer with a generic handler and the CNI
#: binary speaks the wire format itself (``apps/cni/wire.py``), so the stubs had no user.
GENERATED = ("cni_pb2.py", "cni_pb2.pyi")
HEADER = "# ruff: noqa\n# mypy: ignore-errors\n"


def main() -> int:
    from grpc_tools import protoc  # type: ignore[import-untyped,unused-ignore]  # dev dep

    status = protoc.main(
        ["protoc", f"-I{ROOT}", f"--python_out={ROOT}", f"--pyi_out={ROOT}",
         str(ROOT / PROTO)]
    )
    if status != 0:
        print(f"protoc failed with status {status}", file=sys.stderr)
        return int(status)
    for name in GENERATED:
        path = Path(__file__).with_name(name)
        text = path.read_text(encoding="utf-8")
        if not text.startswith(HEADER):
            path.write_text(HEADER + text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
