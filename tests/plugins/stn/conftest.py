"""Fixtures: a node namespace whose veth "NIC" leads to a gateway namespace; contiv-stn as a process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
NIC = "nic0"
NODE_IP = "192.168.77.10/24"
GATEWAY = "192.168.77.1"


def ip(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "-n", ns, *args], check=check, capture_output=True, text=True)


def ip_json(ns: str, *args: str) -> Any:
    out = ip(ns, "-j", *args).stdout
    return json.loads(out) if out.strip() else []


@dataclass
class Node:
    """A node namespace with a NIC (``nic0``) and a gateway namespace at the other end."""

    ns: str
    gw_ns: str

    def link_state(self) -> dict[str, Any]:
        """What must be identical before a steal and after the release."""
        return {
            "addr": ip_json(self.ns, "addr", "show", "dev", NIC),
            "route4": ip_json(self.ns, "route", "show", "table", "all", "dev", NIC),
            "route6": ip_json(self.ns, "-6", "route", "show", "table", "all", "dev", NIC),
        }

    def addresses(self) -> list[str]:
        (link,) = ip_json(self.ns, "addr", "show", "dev", NIC)
        return [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a.get("scope") != "link"]

    def routes(self) -> list[dict[str, Any]]:
        """Routes through the NIC but the kernel's own IPv6 link-local and multicast ones."""
        return [
            r for r in ip_json(self.ns, "route", "show", "table", "all")
            if r.get("dev") == NIC and r.get("table") != "local" and not r["dst"].startswith(("fe80:", "ff00:"))
        ]


@pytest.fixture
def node() -> Iterator[Node]:
    tag = f"{os.getpid() % 10000}{uuid.uuid4().hex[:4]}"
    n = Node(ns=f"stn-n{tag}", gw_ns=f"stn-g{tag}")
    subprocess.run(["ip", "netns", "add", n.ns], check=True)
    subprocess.run(["ip", "netns", "add", n.gw_ns], check=True)
    try:
        # No IPv6 duplicate address detection: a link-local address still "tentative" when the
        # state is first read would differ from the settled one read after the release.
        subprocess.run(["ip", "netns", "exec", n.ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"],
                       check=True)
        ip(n.ns, "link", "add", NIC, "type", "veth", "peer", "name", "gw0", "netns", n.gw_ns)
        ip(n.ns, "link", "set", NIC, "up")
        ip(n.gw_ns, "link", "set", "gw0", "up")
        ip(n.gw_ns, "addr", "add", f"{GATEWAY}/24", "dev", "gw0")
        ip(n.ns, "addr", "add", NODE_IP, "dev", NIC)
        ip(n.ns, "addr", "add", "192.168.78.10/24", "dev", NIC, "noprefixroute")
        ip(n.ns, "addr", "add", "2001:db8:77::10/64", "dev", NIC, "nodad")
        ip(n.ns, "route", "add", "default", "via", GATEWAY, "dev", NIC, "metric", "100")
        ip(n.ns, "route", "add", "10.66.0.0/16", "via", "192.168.77.2", "dev", NIC, "proto", "static")
        ip(n.ns, "route", "add", "10.55.0.0/24", "dev", NIC, "scope", "link", "src", "192.168.77.10")
        ip(n.ns, "route", "add", "10.44.0.0/16", "via", GATEWAY, "dev", NIC, "table", "100")
        ip(n.ns, "-6", "route", "add", "2001:db8:99::/48", "via", "2001:db8:77::1", "dev", NIC)
        yield n
    finally:
        subprocess.run(["ip", "netns", "del", n.ns], check=False)
        subprocess.run(["ip", "netns", "del", n.gw_ns], check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Daemon:
    """contiv-stn running as its own process (``python -m apps.stn.main``)."""

    workdir: Path
    config: dict[str, Any]
    proc: subprocess.Popen[str] | None = None
    logs: list[str] = field(default_factory=list)

    @property
    def socket(self) -> str:
        return str(self.config["stn"]["socket_path"])

    @property
    def state_file(self) -> Path:
        return Path(self.config["stn"]["state_file"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config['http']['port']}"

    def start(self) -> Daemon:
        self.config["http"]["port"] = free_port()
        path = self.workdir / "stn.yaml"
        path.write_text(yaml.safe_dump(self.config))
        log = open(self.workdir / "stn.log", "a")  # closed right after Popen
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apps.stn.main", "--config", str(path)],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )
        log.close()
        wait_for("contiv-stn to be ready", self._ready)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"contiv-stn exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(self.url + "/readiness", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return (self.workdir / "stn.log").read_text()

    def rest(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.url + "/contiv/v1/stn", timeout=5).json()
        return data

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run(
            [sys.executable, "-m", "apps.stn.main", *args, "--socket", self.socket],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        )


@pytest.fixture
def make_daemon(node: Node) -> Iterator[Callable[..., Daemon]]:
    workdir = Path(tempfile.mkdtemp(prefix="stn-"))
    daemons: list[Daemon] = []

    def make(**watchdog: Any) -> Daemon:
        config = {
            "plugins": ["http", "health", "metrics", "stn"],
            "http": {"address": "127.0.0.1", "port": 0},
            "stn": {
                "socket_path": str(workdir / "stn.sock"),
                "state_file": str(workdir / "state" / "stn.json"),
                "namespace": node.ns,
                "watchdog": {"enabled": False, **watchdog},
            },
        }
        if watchdog:
            config["stn"]["watchdog"]["enabled"] = True
        daemon = Daemon(workdir, config)
        daemons.append(daemon)
        return daemon.start()

    try:
        yield make
    finally:
        for daemon in daemons:
            daemon.kill(signal.SIGTERM)
        shutil.rmtree(workdir, ignore_errors=True)


def assert_same(after: dict[str, Any], before: dict[str, Any]) -> None:
    """``after == before``, failing with a line diff of the ``ip -j`` output."""
    if after != before:
        import difflib

        a = json.dumps(before, indent=1, sort_keys=True).splitlines()
        b = json.dumps(after, indent=1, sort_keys=True).splitlines()
        diff = difflib.unified_diff(a, b, "before", "after", lineterm="")
        raise AssertionError("link state differs:\n" + "\n".join(diff))
