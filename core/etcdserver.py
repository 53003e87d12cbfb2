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

from core.kvdb.etcd import TLSFiles

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
    """Server certificate and key, and the CA whose client certificates etcd requires; with a
    peer pair, members also talk to each other over mutual TLS."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path,
                 peer_cert_file: Path | None = None, peer_key_file: Path | None = None,
                 directory: Path | None = None) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.peer_cert_file = peer_cert_file
        self.peer_key_file = peer_key_file
        self.directory = directory

    @classmethod
    def from_dir(cls, directory: Path) -> EtcdTLS:
        """The files of a directory written by ``contiv-certs generate``."""
        return cls(directory / "etcd-server.crt", directory / "etcd-server.key", directory / "ca.crt",
                   directory / "etcd-peer.crt", directory / "etcd-peer.key", directory)

    def etcd_args(self) -> list[str]:
        """etcd's flags: client certificates required on the client port (and the peer port)."""
        args = ["--cert-file", str(self.cert_file), "--key-file", str(self.key_file),
                "--client-cert-auth", "--trusted-ca-file", str(self.client_ca_file)]
        if self.peer_cert_file is not None and self.peer_key_file is not None:
            args += ["--peer-cert-file", str(self.peer_cert_file), "--peer-key-file", str(self.peer_key_file),
                     "--peer-client-cert-auth", "--peer-trusted-ca-file", str(self.client_ca_file)]
        return args

    def client(self, name: str = "root") -> TLSFiles:
        """The client files ``<name>.crt/.key`` next to the server's (contiv-certs' layout)."""
        if self.directory is None:
            raise ValueError("client certificates need an EtcdTLS made by from_dir")
        return TLSFiles.from_dir(self.directory, name)

    def etcdctl_args(self, name: str = "root") -> list[str]:
        """etcdctl's flags to authenticate with ``<name>.crt``."""
        files = self.client(name)
        return [f"--cacert={files.ca_file}", f"--cert={files.cert_file}", f"--key={files.key_file}"]


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

    @property
    def peer_url(self) -> str:
        secure = self.tls is not None and self.tls.peer_cert_file is not None
        return f"{'https' if secure else 'http'}://{self.host}:{self.peer_port}"

    def client_tls(self, name: str = "root") -> TLSFiles:
        """TLS files of client ``name`` (``root`` by default) for this server's brokers."""
        if self.tls is None:
            raise ValueError("this etcd runs without TLS")
        return self.tls.client(name)

    def kvdb_config(self, name: str = "root") -> dict[str, object]:
        """The ``kvdb`` config section of a client of this server (``name``'s certificate)."""
        section: dict[str, object] = {"backend": "etcd", "endpoints": [self.endpoint]}
        if self.tls is None:
            section["insecure"] = True
        else:
            files = self.client_tls(name)
            section["tls"] = {"ca_file": str(files.ca_file), "cert_file": str(files.cert_file),
                              "key_file": str(files.key_file)}
        return section

    def client_env(self, name: str = "root") -> dict[str, str]:
        """Environment for an app process that uses this server (``ETCD_ENDPOINTS`` and the
        ``CONTIV_KVDB__TLS__*`` / ``CONTIV_KVDB__INSECURE`` overrides)."""
        env = {"ETCD_ENDPOINTS": self.endpoint}
        if self.tls is None:
            env["CONTIV_KVDB__INSECURE"] = "true"
        else:
            files = self.client_tls(name)
            env |= {"CONTIV_KVDB__TLS__CA_FILE": str(files.ca_file),
                    "CONTIV_KVDB__TLS__CERT_FILE": str(files.cert_file),
                    "CONTIV_KVDB__TLS__KEY_FILE": str(files.key_file)}
        return env

    def etcdctl(self, *args: str, user: str = "root") -> subprocess.CompletedProcess[str]:
        """Run ``etcdctl`` against this server (as ``user``'s certificate with TLS)."""
        tls = self.tls.etcdctl_args(user) if self.tls is not None else []
        cmd = ["etcdctl", f"--endpoints={self.url}", *tls, *args]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"))

    def start(self, timeout_s: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        cmd = [
            etcd_binary(),
            "--name", "contiv",
            "--data-dir", str(self.data_dir / "member-data"),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", f"contiv={self.peer_url}",
            "--log-level", "error",
            "--logger", "zap",
        ]
        if self.tls is not None:
            cmd += self.tls.etcd_args()
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
            if self.netns is not None:
                # In the namespace: TLS -> the port accepts connections; plain -> /health says true.
                code = (f"import socket;socket.create_connection(('{self.host}',{self.client_port}),1);print('true')"
                        if self.tls is not None else
                        f"import urllib.request;print(urllib.request.urlopen('{self.url}/health',timeout=1).read())")
                probe = subprocess.run(["ip", "netns", "exec", self.netns, "python3", "-c", code], capture_output=True)
                if b"true" in probe.stdout:
                    return
            elif self.tls is not None:
                # Client-certificate auth: readiness is "the TLS port accepts connections".
                try:
                    with socket.create_connection((self.host, self.client_port), timeout=1):
                        return
                except OSError as exc:
                    last = exc
            else:
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=1) as rsp:
                        if b"true" in rsp.read():
                            return
                except Exception as exc:  # noqa: BLE001 - retried until the deadline
                    last = exc
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
