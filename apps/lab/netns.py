"""Thin wrappers over ``ip`` for the lab: namespaces, veth pairs, a bridge, processes inside.

Where namespaces live and how a name maps to a file is :mod:`plugins.linux.netns`'s (the one
namespace module); the lab only adds creating, populating and deleting them with ``ip``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from plugins.linux.netns import NETNS_RUN_DIR, namespace_exists

NETNS_DIR = Path(NETNS_RUN_DIR)


def python_module(module: str, *args: str) -> list[str]:
    """The command that runs ``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


class LabCommandError(RuntimeError):
    """A command the lab ran failed; the message has the command and its stderr."""


def run(cmd: Sequence[str], check: bool = True, netns: str | None = None,
        input: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    proc = subprocess.run(full, capture_output=True, text=True, input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabCommandError(f"{' '.join(full)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ns_exists(name: str) -> bool:
    return bool(name) and namespace_exists(name)


def ns_list(prefix: str) -> list[str]:
    if not NETNS_DIR.exists():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def ns_add(name: str) -> None:
    if not ns_exists(name):
        run(["ip", "netns", "add", name])
    run(["ip", "link", "set", "lo", "up"], netns=name)


def ns_pids(name: str) -> list[int]:
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(p) for p in out.split()]


def kill_pids(pids: Sequence[int], sig: int = signal.SIGTERM, wait_s: float = 5.0) -> None:
    """Signal processes, wait for them, SIGKILL what is left."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    return pid is not None and _alive(pid)


def ns_delete(name: str) -> None:
    """Kill every process in the namespace, then delete it (its links go with it)."""
    if not ns_exists(name):
        return
    kill_pids(ns_pids(name))
    run(["ip", "netns", "delete", name], check=False)


def remove_lab(prefix: str, root: Path) -> list[str]:
    """Delete every namespace named ``prefix*`` and the lab's directory ``root``; what went."""
    removed: list[str] = []
    for ns in ns_list(prefix):
        ns_delete(ns)
        removed.append(f"netns {ns}")
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
        removed.append(f"dir {root}")
    return removed


def veth(ns_a: str, name_a: str, ns_b: str, name_b: str, mtu: int = 1500) -> None:
    """A veth pair with one end in each namespace, both up."""
    run(["ip", "link", "add", name_a, "netns", ns_a, "mtu", str(mtu), "type", "veth",
         "peer", "name", name_b, "netns", ns_b, "mtu", str(mtu)])
    run(["ip", "link", "set", name_a, "up"], netns=ns_a)
    run(["ip", "link", "set", name_b, "up"], netns=ns_b)


def spawn(cmd: Sequence[str], netns: str | None, log_file: Path,
          env: dict[str, str] | None = None) -> int:
    """Start a detached process (own session) inside ``netns``; returns its PID."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(full, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    return proc.pid
