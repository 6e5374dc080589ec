"""A throw-away CA, a server certificate for 127.0.0.1 and client certificates, for mTLS tests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
    ca_key, ca = _certificate("test-ca", None, ca=True)
    other_key, other = _certificate("other-ca", None, ca=True)
    server = _certificate("authz-admin", (ca_key, ca), san=[x509.IPAddress(_LOOPBACK)])
    client = _certificate(
        "ops-admin", (ca_key, ca), san=[x509.UniformResourceIdentifier(CLIENT_SPIFFE)]
    )
    stranger = _certificate("stranger", (other_key, other))
    paths = Pki(*(directory / name for name in _FILES))
    _write(paths.ca, None, ca)
    _write(paths.server_cert, paths.server_key, server[1], server[0])
    _write(paths.client_cert, paths.client_key, client[1], client[0])
    _write(paths.stranger_cert, paths.stranger_key, stranger[1], stranger[0])
    return paths


_LOOPBACK = ipaddress.ip_address("127.0.0.1")
_FILES = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "x.pem", "x.key")


def _certificate(
    name: str,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, signer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        assert issuer is not None
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()),
            critical=False,
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(signer_key, hashes.SHA256())


def _write(
    cert_path: Path,
    key_path: Path | None,
    certificate: x509.Certificate,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> None:
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if key_path is not None and key is not None:
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
