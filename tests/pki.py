"""Throw-away X.509 certificate authorities for TLS and mTLS tests.

A `CertificateAuthority` issues leaf certificates with whatever subject alternative
names a test needs (SPIFFE URIs, loopback IPs, DNS names); `Issued.write` puts a
certificate and its private key in PEM files, the key readable by its owner only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["CertificateAuthority", "Issued"]


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, cert_path: Path, key_path: Path) -> tuple[Path, Path]:
        """Write the certificate and (mode 0600) the key; the two paths."""
        cert_path.write_bytes(self.cert_pem())
        key_path.write_bytes(self.key_pem())
        key_path.chmod(0o600)
        return cert_path, key_path


class CertificateAuthority:
    """A self-signed CA (ECDSA P-256) that issues leaf certificates."""

    def __init__(self, name: str = "test-ca") -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        self.issued = Issued(
            key,
            _builder(subject, subject, key, timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256()),
        )

    @property
    def certificate(self) -> x509.Certificate:
        return self.issued.certificate

    def cert_pem(self) -> bytes:
        return self.issued.cert_pem()

    def write(self, path: Path) -> Path:
        """Write the CA certificate (the trust anchor) to ``path``."""
        path.write_bytes(self.cert_pem())
        return path

    def issue(
        self,
        name: str,
        *,
        uris: Iterable[str] = (),
        ips: Iterable[str] = (),
        dns: Iterable[str] = (),
        valid_for: timedelta = timedelta(days=1),
    ) -> Issued:
        """A leaf certificate for ``name`` with the given subject alternative names."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca_key = self.issued.key
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        names += [x509.DNSName(host) for host in dns]
        builder = (
            _builder(_name(name), self.certificate.subject, key, valid_for)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return Issued(key, builder.sign(ca_key, hashes.SHA256()))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, valid_for: timedelta
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + valid_for)
    )
