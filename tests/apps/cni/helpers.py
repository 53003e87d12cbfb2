"""Running the contiv-cni binary as a subprocess without blocking the test's event loop."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    status: int
    output: Any  # parsed stdout (None when empty)
    stderr: str


async def exec_cni(
    cni_bin: Path,
    command: str | None,
    config: Mapping[str, Any] | bytes | None,
    env: Mapping[str, str | None],
) -> Outcome:
    """Execute ``contiv-cni`` with ``CNI_COMMAND=command`` and ``env`` (None removes a key)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    full["CNI_PATH"] = str(cni_bin)
    if command is not None:
        full["CNI_COMMAND"] = command
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    stdin = config if isinstance(config, bytes) else json.dumps(config or {}).encode()
    proc = await asyncio.create_subprocess_exec(
        str(cni_bin / "contiv-cni"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full,
    )
    out, err = await proc.communicate(stdin)
    text = out.decode().strip()
    return Outcome(proc.returncode or 0, json.loads(text) if text else None, err.decode())


def pod_env(container_id: str, netns: str, name: str, namespace: str = "default") -> dict[str, str]:
    return {
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}",
    }


def netconf(version: str, socket: str, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "contiv-k8s", "type": "contiv-cni",
            "grpcServer": socket, **extra}
