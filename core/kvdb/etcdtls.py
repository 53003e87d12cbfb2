"""The etcd client's mutual TLS: the files, the server name they are verified against, and the
refusal of plain text (:mod:`core.kvdb.etcd` uses them; docs/etcd-tls.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from core.kvdb.api import KVError

#: The name clients verify etcd's certificate against (a SAN of contiv-certs' etcd-server.crt):
#: node addresses are not known when the certificates are made.
ETCD_SERVER_NAME = "contiv-etcd"


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """CA, client certificate and key (PEM files), and the name etcd's certificate must carry
    (``""``: the endpoint's host)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str = ETCD_SERVER_NAME

    @classmethod
    def from_dir(cls, directory: Path, client: str, server_name: str = ETCD_SERVER_NAME) -> TLSFiles:
        """``ca.crt`` and ``<client>.crt/.key`` of a directory written by contiv-certs."""
        return cls(directory / "ca.crt", directory / f"{client}.crt", directory / f"{client}.key", server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials; a missing or unreadable file is a :class:`KVError` naming it."""
        def read(path: Path | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return path.read_bytes()
            except OSError as err:
                raise KVError(f"etcd TLS {what} {path}: {err.strerror}") from None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file, "CA file"),
            private_key=read(self.key_file, "key file"),
            certificate_chain=read(self.cert_file, "certificate file"),
        )


def plaintext_refused(endpoints: Sequence[str]) -> str:
    """The error for a plain-text etcd client that was not explicitly allowed."""
    return (f"etcd endpoint {', '.join(endpoints)}: plain text refused (etcd is reached with mutual TLS): "
            "set kvdb.tls (ca_file, cert_file, key_file), or kvdb.insecure: true to accept an "
            "unauthenticated, unencrypted etcd")
