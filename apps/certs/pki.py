"""The certificates contiv uses, made with Python's ``cryptography`` (ECDSA P-256, SHA-256).

One CA signs everything. etcd users are certificate CNs (etcd's ``--client-cert-auth`` with
auth enabled takes the CN as the user name), so each client's CN is its etcd user:

============================  ==================  ==========================================
file                          CN                  used by
============================  ==================  ==========================================
``ca.crt`` (``ca.key``)       contiv-ca           every verifier (the key never leaves the tool)
``etcd-server.crt/.key``      contiv-etcd         etcd's client port (SAN contiv-etcd, localhost,
                                                  127.0.0.1, plus ``etcd_hosts``)
``etcd-peer.crt/.key``        contiv-etcd-peer    etcd members to each other (same SANs)
``root.crt/.key``             root                etcd auth set-up only (kept out of pods)
``ksr.crt/.key``              contiv-ksr          KSR
``agent.crt/.key``            contiv-agent        the agents (one user for all nodes)
``agent-<node>.crt/.key``     contiv-agent.<node> one agent, when per-node users are wanted
``netctl.crt/.key``           contiv-netctl       contiv-netctl (read-only)
``rest.crt/.key``             contiv-agent        the agents' REST server (SAN contiv-agent,
                                                  localhost, 127.0.0.1)
============================  ==================  ==========================================

Clients verify etcd with the server name ``contiv-etcd`` (``kvdb.tls.server_name``), since
node addresses are unknown when the chart makes the certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CN = "contiv-ca"
ETCD_SERVER_NAME = "contiv-etcd"
REST_SERVER_NAME = "contiv-agent"
ROOT_USER = "root"
KSR_USER = "contiv-ksr"
AGENT_USER = "contiv-agent"
NETCTL_USER = "contiv-netctl"
VALID_DAYS = 3650

#: Files of :func:`write_set` that the pods mount (everything but the CA key and root's pair).
POD_FILES = ("ca.crt", "etcd-server.crt", "etcd-server.key", "etcd-peer.crt", "etcd-peer.key",
             "ksr.crt", "ksr.key", "agent.crt", "agent.key", "netctl.crt", "netctl.key",
             "rest.crt", "rest.key")
#: Files the etcd auth set-up needs (root's certificate; mounted only where auth is set up).
ROOT_FILES = ("ca.crt", "root.crt", "root.key")


def agent_user(node: str | None = None) -> str:
    """The etcd user of the shared agent certificate, or of one node's agent."""
    return AGENT_USER if node is None else f"{AGENT_USER}.{node}"


@dataclass(frozen=True, slots=True)
class Pair:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_ca(cn: str = CA_CN, days: int = VALID_DAYS) -> Pair:
    """A self-signed CA."""
    key = _key()
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Pair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def _san(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue(ca: Pair, cn: str, *, server: bool = False, client: bool = False,
          hosts: Sequence[str] = (), days: int = VALID_DAYS) -> Pair:
    """A leaf certificate signed by ``ca`` for a server (``hosts`` as SANs), a client, or both."""
    if not (server or client):
        raise ValueError("a certificate is for a server, a client or both")
    if server and not hosts:
        raise ValueError(f"server certificate {cn!r} needs at least one host name or address")
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key made by contiv-certs")
    key = _key()
    now = _now()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def common_name(cert_pem: bytes) -> str:
    """The CN of a PEM certificate (the etcd user it authenticates as)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _write(path: Path, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _store(out: Path, stem: str, pair: Pair) -> None:
    _write(out / f"{stem}.key", pair.key, private=True)
    _write(out / f"{stem}.crt", pair.cert, private=False)


def _load(out: Path, stem: str) -> Pair | None:
    crt, key = out / f"{stem}.crt", out / f"{stem}.key"
    if crt.exists() and key.exists():
        return Pair(crt.read_bytes(), key.read_bytes())
    if crt.exists() or key.exists():
        raise ValueError(f"{out}: {stem}.crt and {stem}.key must both exist or both be absent")
    return None


def write_set(out: Path, *, etcd_hosts: Sequence[str] = (), agent_nodes: Sequence[str] = (),
              days: int = VALID_DAYS) -> list[Path]:
    """Write every file of the table above into ``out``; returns the files written.

    Files already there are kept (an existing CA then signs the new ones), so the same
    command adds a node's agent certificate later. Keys are written mode 0600.
    """
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    ca = _load(out, "ca")
    if ca is None:
        ca = new_ca(days=days)
        _store(out, "ca", ca)
    etcd_names = [ETCD_SERVER_NAME, "localhost", "127.0.0.1", *etcd_hosts]
    wanted: list[tuple[str, str, bool, bool, Sequence[str]]] = [
        ("etcd-server", ETCD_SERVER_NAME, True, True, etcd_names),  # etcd's own gateway dials with it
        ("etcd-peer", "contiv-etcd-peer", True, True, etcd_names),
        ("root", ROOT_USER, False, True, ()),
        ("ksr", KSR_USER, False, True, ()),
        ("agent", agent_user(), False, True, ()),
        ("netctl", NETCTL_USER, False, True, ()),
        ("rest", REST_SERVER_NAME, True, False, [REST_SERVER_NAME, "localhost", "127.0.0.1"]),
        *[(f"agent-{node}", agent_user(node), False, True, ()) for node in agent_nodes],
    ]
    for stem, cn, server, client, hosts in wanted:
        if _load(out, stem) is None:
            _store(out, stem, issue(ca, cn, server=server, client=client, hosts=hosts, days=days))
    return sorted(set(out.iterdir()) - before)
