"""A process running nodesync + ipam that the crash test kills with SIGKILL.

Usage: python -m tests.plugins.ipam.crash_agent <kvdb config as JSON> <state file>
Prints ``started`` once running; then for each line ``alloc <name>`` read on stdin allocates
an address for pod ``default/<name>`` and prints ``<name> <ip>``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from core.kvdb.plugin import KVDBConfig, KVDBPlugin
from plugins.podmanager.api import PodID
from tests.plugins.ipam.helpers import Node


async def main(kvdb_config: str, state_file: str) -> None:
    kvdb = KVDBPlugin(KVDBConfig(**json.loads(kvdb_config), op_timeout_s=1.0))
    await kvdb.init()
    node = Node(kvdb, Path(state_file))
    ipam = await node.start()
    print("started", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command, name = line.split()
        if command == "alloc":
            print(name, ipam.allocate_pod_ip(PodID(name, "default")), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
