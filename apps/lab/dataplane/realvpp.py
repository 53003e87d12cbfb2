"""A real VPP per node namespace (the lab's ``--dataplane vpp`` and the real-VPP tests).

``CONTIV_TEST_VPP_DIR`` names a VPP installation directory (``bin/vpp``, ``lib/...``,
``share/vpp/api``; ``.ci/run`` unpacks one and sets it), else ``vpp`` on ``PATH`` is used.
Each :class:`RealVPP` runs ``vpp`` inside one network namespace with its own run directory
(API, CLI and stats sockets) and its own ``api-segment`` prefix, so several run side by side.
The agent never starts VPP (on a real node VPP is a service of its own); the lab and the tests do.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from plugins.vpp.apidefs import bundled_api_dir, has_definitions

ENV_VAR = "CONTIV_TEST_VPP_DIR"

STARTUP_CONF = """\
unix {{ nodaemon cli-listen {run}/cli.sock log {run}/vpp.log{poll_sleep} }}
socksvr {{ socket-name {run}/api.sock }}
api-segment {{ prefix {prefix} }}
memory {{ main-heap-size 512M main-heap-page-size default }}
buffers {{ buffers-per-numa 16384 page-size default }}
statseg {{ socket-name {run}/stats.sock size 32M page-size default }}
"""


@dataclass(frozen=True)
class VPPInstall:
    """Where a VPP installation's pieces are."""

    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "vpp"

    @property
    def vppctl(self) -> Path:
        return self.root / "bin" / "vppctl"

    @property
    def api_dir(self) -> str:
        """The installation's own definitions (its version), else the shipped ones."""
        own = self.root / "share" / "vpp" / "api"
        return str(own) if has_definitions(own) else bundled_api_dir()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [str(p) for p in (self.root / "lib" / "x86_64-linux-gnu", self.root / "lib") if p.is_dir()]
        if libs:
            env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
        return env


def find_vpp() -> tuple[VPPInstall | None, str]:
    """The VPP to test against and how it was found, or ``None`` and why there is none."""
    configured = os.environ.get(ENV_VAR, "")
    if configured:
        root = Path(configured)
        for candidate in (root, root / "vppdist"):
            if (candidate / "bin" / "vpp").is_file():
                return VPPInstall(candidate), f"{ENV_VAR}={configured}"
        return None, f"{ENV_VAR}={configured} has no bin/vpp"
    on_path = shutil.which("vpp")
    if on_path:
        return VPPInstall(Path(on_path).resolve().parent.parent), f"vpp on PATH ({on_path})"
    return None, f"no real VPP: set {ENV_VAR} to a VPP directory (bin/vpp) or put vpp on PATH"


class RealVPP:
    """One ``vpp`` process in network namespace ``netns`` (``start``/``stop``/``restart``)."""

    def __init__(
        self, install: VPPInstall, netns: str, name: str, run_dir: Path | None = None, poll_sleep_usec: int = 100,
        extra_conf: str = "",
    ) -> None:
        """``poll_sleep_usec``: the main loop's nap between polls (0: busy polling, a whole core);
        ``extra_conf``: startup.conf sections appended as they are (``cpu { workers 1 }``)."""
        self.poll_sleep_usec = poll_sleep_usec
        self.extra_conf = extra_conf
        self.install = install
        self.netns = netns
        self.name = name
        if run_dir is None:  # short socket paths (108 bytes at most)
            run_dir = Path(tempfile.mkdtemp(prefix=f"vr{name[:6]}-", dir="/tmp"))
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        self.prefix = f"{name}-{os.getpid()}-{self.run_dir.name}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_socket(self) -> str:
        return str(self.run_dir / "api.sock")

    @property
    def cli_socket(self) -> str:
        return str(self.run_dir / "cli.sock")

    @property
    def api_dir(self) -> str:
        return self.install.api_dir

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout_s: float = 60.0) -> RealVPP:
        conf = self.run_dir / "startup.conf"
        poll_sleep = f" poll-sleep-usec {self.poll_sleep_usec}" if self.poll_sleep_usec else ""
        text = STARTUP_CONF.format(run=self.run_dir, prefix=self.prefix, poll_sleep=poll_sleep)
        conf.write_text(text + (self.extra_conf.rstrip() + "\n" if self.extra_conf else ""))
        for sock in ("api.sock", "cli.sock", "stats.sock"):
            (self.run_dir / sock).unlink(missing_ok=True)  # VPP leaves them behind
        out = open(self.run_dir / "stdout.log", "ab")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, str(self.install.binary), "-c", str(conf)],
            env=self.install.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        out.close()
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        """Wait until the CLI answers (the API socket exists by then); a dead VPP fails at once."""
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"VPP in {self.netns} exited ({self.process.returncode}): {self.log_tail()}")
            if Path(self.api_socket).exists() and self.cli("show version").startswith("vpp "):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"VPP in {self.netns} not ready after {timeout_s}s: {self.log_tail()}")
            time.sleep(0.05)

    def cli(self, command: str) -> str:
        """Run one ``vppctl`` command (empty string when the CLI is not up)."""
        if not Path(self.cli_socket).exists():
            return ""
        done = subprocess.run(
            [str(self.install.vppctl), "-s", self.cli_socket, *command.split()],
            env=self.install.env(), capture_output=True, text=True, check=False, timeout=30,
        )
        return done.stdout

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("stdout.log", "vpp.log"):
            path = self.run_dir / name
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return text

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)

    def restart(self) -> RealVPP:
        """Stop and start again: a new PID and an empty VPP."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)
