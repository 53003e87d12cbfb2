"""Start and stop a real etcd server (Debian's ``etcd-server``) on free loopback ports.

Used by the local lab, the tests and the benchmarks. Each server gets a fresh data dir unless
one is given; ``stop``/``start`` keep the data dir, so a restart keeps the data and revisions.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ETCD_BINARIES = ("etcd", "/usr/bin/etcd")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def etcd_binary() -> str:
    for candidate in ETCD_BINARIES:
        found = shutil.which(candidate)
        if found:
            return found
    raise FileNotFoundError("etcd is not installed (Debian package etcd-server)")


class EtcdTLS:
    """Server certificate and key, and the CA whose client certificates etcd requires."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file


class EtcdServer:
    """One etcd member listening on ``host`` (loopback by default).

    ``netns`` runs it inside a named network namespace (``ip netns exec``), as the lab does.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        client_port: int | None = None,
        peer_port: int | None = None,
        netns: str | None = None,
        log_file: Path | None = None,
        tls: EtcdTLS | None = None,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="contiv-etcd-"))
        self.host = host
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.netns = netns
        self.log_file = log_file
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``host:port`` of the client URL, as ``ETCD_ENDPOINTS`` takes it."""
        return f"{self.host}:{self.client_port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    def start(self, timeout_s: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        cmd = [
            etcd_binary(),
            "--name", "contiv",
            "--data-dir", str(self.data_dir / "member-data"),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", f"http://{self.host}:{self.peer_port}",
            "--initial-advertise-peer-urls", f"http://{self.host}:{self.peer_port}",
            "--initial-cluster", f"contiv=http://{self.host}:{self.peer_port}",
            "--log-level", "error",
            "--logger", "zap",
        ]
        if self.tls is not None:
            cmd += ["--cert-file", str(self.tls.cert_file), "--key-file", str(self.tls.key_file),
                    "--client-cert-auth", "--trusted-ca-file", str(self.tls.client_ca_file)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        env = dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", ""))
        if self.log_file is not None:
            with open(self.log_file, "ab") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)
        else:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode} during start")
            if self.tls is not None:
                # Client-certificate auth: readiness is "the TLS port accepts connections".
                try:
                    with socket.create_connection((self.host, self.client_port), timeout=1):
                        return
                except OSError as exc:
                    last = exc
            elif self.netns is None:
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=1) as rsp:
                        if b"true" in rsp.read():
                            return
                except Exception as exc:  # noqa: BLE001 - retried until the deadline
                    last = exc
            else:
                probe = subprocess.run(
                    ["ip", "netns", "exec", self.netns, "python3", "-c",
                     f"import urllib.request;print(urllib.request.urlopen('{self.url}/health',timeout=1).read())"],
                    capture_output=True,
                )
                if b"true" in probe.stdout:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"etcd at {self.url} not ready after {timeout_s}s: {last}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (data dir kept). SIGKILL simulates a crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def wipe(self) -> None:
        """Stop, delete all data, start empty (simulates a restored or replaced etcd)."""
        self.stop()
        shutil.rmtree(self.data_dir / "member-data", ignore_errors=True)
        self.start()

    def cleanup(self) -> None:
        self.stop(signal.SIGKILL)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
