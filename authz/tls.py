"""The gRPC listener's mTLS: server credentials that follow certificate rotation on disk.

cert-manager, SPIRE or a Kubernetes secret volume replace the certificate, the key
and the client CA while the server runs. gRPC asks :meth:`CertificateFiles.fetch`
before every TLS handshake (once per new connection, on a gRPC core thread, never
per call); it stats the three files and re-reads them only when they changed, so
new connections get the new files and open connections are left alone. A
replacement that does not load, or whose key is not the certificate's, is refused
and logged, and the previous pair keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from authz.config import ConfigError

__all__ = ["CertificateFiles", "server_credentials"]

_log = logging.getLogger("authz.tls")

# File times are coarse (a kernel tick, or a second on some file systems): a file
# rewritten within the tick of the last read keeps its size and times. Files changed
# this recently are therefore compared by content, not by stat, until they settle.
_SETTLE_NS = 2_000_000_000

_Stats = tuple[tuple[int, ...], ...]
_Contents = tuple[bytes, bytes, bytes]  # certificate chain, private key, client CA


@dataclass(frozen=True, slots=True)
class _Seen:
    """The files as last read, whether they were loaded or refused."""

    stats: _Stats
    contents: _Contents
    settled: bool  # old enough that an unchanged stat means unchanged content


class CertificateFiles:
    """The serving certificate (chain), its private key and the client CA, as PEM files
    that may be replaced at any time.

    Thread-safe: gRPC calls :meth:`fetch` from its own threads, possibly several at once.
    """

    def __init__(self, cert: Path, key: Path, client_ca: Path) -> None:
        self.paths = (cert, key, client_ca)
        self._lock = threading.Lock()
        self._seen: _Seen | None = None
        self._refusal = ""  # the last refusal logged, so a broken file is logged once

    def load(self) -> grpc.ServerCertificateConfiguration:
        """The files as they are now; ConfigError if they cannot serve (used at start)."""
        with self._lock:
            try:
                stats, settled = self._stat()
                contents = self._read()
                config, served = _configuration(self.paths, contents)
            except OSError as exc:
                raise ConfigError(f"tls: cannot read {exc.filename}: {exc.strerror}") from None
            except ValueError as exc:
                raise ConfigError(f"tls: {exc}") from None
            self._seen = _Seen(stats, contents, settled)
            _log.info("tls: serving %s", served)
            return config

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate fetcher: a new configuration when the files changed and
        load, else None (keep the current one). Never raises."""
        with self._lock:
            seen = self._seen
            try:
                stats, settled = self._stat()
                if seen is not None and seen.settled and stats == seen.stats:
                    return None
                contents = self._read()
            except OSError as exc:
                self._refuse(f"cannot read {exc.filename}: {exc.strerror}")
                return None
            self._seen = _Seen(stats, contents, settled)
            if seen is not None and contents == seen.contents:
                return None
            try:
                config, served = _configuration(self.paths, contents)
            except ValueError as exc:
                self._refuse(str(exc))
                return None
            self._refusal = ""
            _log.info("tls: files changed on disk; new connections get %s", served)
            return config

    def _stat(self) -> tuple[_Stats, bool]:
        """What identifies the files' versions, and whether they have settled."""
        # stat follows symlinks: a secret volume's `..data` swap shows as new inodes.
        stats = [os.stat(path) for path in self.paths]
        newest = max(max(stat.st_mtime_ns, stat.st_ctime_ns) for stat in stats)
        settled = time.time_ns() - newest > _SETTLE_NS
        return tuple(_signature(stat) for stat in stats), settled

    def _read(self) -> _Contents:
        cert, key, client_ca = (path.read_bytes() for path in self.paths)
        return cert, key, client_ca

    def _refuse(self, why: str) -> None:
        if why != self._refusal:
            self._refusal = why
            _log.warning("tls: refused the files on disk (%s); the previous ones keep serving", why)


def server_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    """mTLS credentials: clients must present a certificate chaining to the client CA.

    ConfigError if the files cannot serve now; later replacements go through
    :meth:`CertificateFiles.fetch`.
    """
    return grpc.dynamic_ssl_server_credentials(
        files.load(), files.fetch, require_client_authentication=True
    )


def _signature(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _configuration(
    paths: tuple[Path, Path, Path], contents: _Contents
) -> tuple[grpc.ServerCertificateConfiguration, str]:
    """gRPC's configuration for ``contents`` and a description of the served certificate;
    ValueError naming the file when they cannot serve. Never quotes key material."""
    cert_path, key_path, ca_path = paths
    cert_pem, key_pem, ca_pem = contents
    chain = _certificates(cert_pem, f"{cert_path}: no PEM certificate")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"{key_path}: not an unencrypted PEM private key") from None
    if key.public_key() != chain[0].public_key():
        raise ValueError(f"{key_path}: not the private key of the certificate in {cert_path}")
    authorities = _certificates(ca_pem, f"{ca_path}: no PEM CA certificate")
    config = grpc.ssl_server_certificate_configuration(
        [(key_pem, cert_pem)], root_certificates=ca_pem
    )
    served = (
        f"certificate serial {chain[0].serial_number:x} "
        f"(expires {chain[0].not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}), "
        f"{len(authorities)} client CA certificate(s)"
    )
    return config, served


def _certificates(pem: bytes, missing: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ValueError(missing) from None
