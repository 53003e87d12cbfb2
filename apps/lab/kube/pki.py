"""The certificates of a lab Kubernetes cluster, made with the ``openssl`` command (ECDSA P-256).

One CA signs everything: the API server's serving certificate, the client certificates of the
admin, the controller-manager, the scheduler, each kubelet and the API server's kubelet client.
The service-account signing key is a separate EC key. Files are written once per lab; a second
``ensure_*`` call reuses them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


class PKIError(RuntimeError):
    """openssl failed; the message holds its command line and stderr."""


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise PKIError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


def ensure_ca(d: Path) -> tuple[Path, Path]:
    """``ca.crt`` and ``ca.key`` in ``d`` (made when absent)."""
    d.mkdir(parents=True, exist_ok=True)
    crt, key = d / "ca.crt", d / "ca.key"
    if not crt.exists():
        _key(key)
        _openssl("req", "-x509", "-new", "-key", str(key), "-out", str(crt), "-days", "3650",
                 "-subj", "/CN=contiv-lab-kubernetes-ca",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
    return crt, key


def ensure_cert(d: Path, name: str, cn: str, org: str = "", ips: tuple[str, ...] = (),
                dns: tuple[str, ...] = (), server: bool = False) -> tuple[Path, Path]:
    """``<name>.crt``/``<name>.key`` signed by the CA in ``d``: a client certificate, or with
    ``server`` a serving one for ``ips`` and ``dns``."""
    ca_crt, ca_key = ensure_ca(d)
    crt, key, csr = d / f"{name}.crt", d / f"{name}.key", d / f"{name}.csr"
    if crt.exists():
        return crt, key
    _key(key)
    subject = f"/CN={cn}" + (f"/O={org}" if org else "")
    ext = ["-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
           "-addext", "extendedKeyUsage=" + ("serverAuth,clientAuth" if server else "clientAuth")]
    sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{n}" for n in dns]
    if sans:
        ext += ["-addext", "subjectAltName=" + ",".join(sans)]
    _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", subject, *ext)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(crt), "-days", "3650", "-copy_extensions", "copy")
    csr.unlink()
    return crt, key


def ensure_sa_key(d: Path) -> tuple[Path, Path]:
    """The service-account token signing key pair (``sa.key``, ``sa.pub``)."""
    key, pub = d / "sa.key", d / "sa.pub"
    d.mkdir(parents=True, exist_ok=True)
    if not key.exists():
        _key(key)
        _openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub))
    return key, pub


def kubeconfig(path: Path, server: str, ca: Path, crt: Path, key: Path, user: str) -> Path:
    """A kubeconfig for ``user`` with its client certificate (paths, not embedded data)."""
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: lab\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: {user}\n  user:\n    client-certificate: {crt}\n    client-key: {key}\n"
        f"contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: {user}\n"
        "current-context: lab\n")
    path.chmod(0o600)
    return path


def apiserver_command(binary: Path, pki_dir: Path, etcd_url: str, bind: str, port: int, advertise: str,
                      service_cidr: str, *extra: str) -> list[str]:
    """kube-apiserver serving with the certificates of ``pki_dir`` (the CA, ``apiserver.*``,
    ``sa.*``), storing in ``etcd_url``; ``extra`` flags added (authorization, admission, ...)."""
    d = pki_dir
    return [
        str(binary), f"--etcd-servers={etcd_url}",
        f"--bind-address={bind}", f"--secure-port={port}", f"--advertise-address={advertise}",
        f"--service-cluster-ip-range={service_cidr}", f"--client-ca-file={d / 'ca.crt'}",
        f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={d / 'sa.pub'}", f"--service-account-signing-key-file={d / 'sa.key'}",
        "--profiling=false", *extra,
    ]
