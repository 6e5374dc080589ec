"""A throw-away CA, a server certificate for 127.0.0.1 and client certificates, for mTLS tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.pki import CertificateAuthority

CLIENT_SPIFFE = "spiffe://cluster.local/ns/ops/sa/admin"


@dataclass(frozen=True)
class Pki:
    """Files of one test PKI."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by another CA
    stranger_key: Path


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate (127.0.0.1) and two client certificates in ``directory``."""
    ca, other = CertificateAuthority("test-ca"), CertificateAuthority("other-ca")
    paths = Pki(*(directory / name for name in _FILES))
    ca.write(paths.ca)
    ca.issue("authz-admin", ips=["127.0.0.1"]).write(paths.server_cert, paths.server_key)
    ca.issue("ops-admin", uris=[CLIENT_SPIFFE]).write(paths.client_cert, paths.client_key)
    other.issue("stranger").write(paths.stranger_cert, paths.stranger_key)
    return paths


_FILES = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "x.pem", "x.key")
