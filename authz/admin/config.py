"""Admin API configuration: where it listens, how callers authenticate, its secrets on disk.

``AdminConfig`` is validated when built; ``read_token`` and ``ssl_context`` turn
its token file and TLS files into what the listener needs, or a ConfigError.
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from authz.config import ConfigError

__all__ = ["DEFAULT_ADMIN_LISTEN", "AdminConfig", "read_token", "ssl_context"]

DEFAULT_ADMIN_LISTEN = "127.0.0.1:9192"
_MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Where the admin API listens and how callers authenticate."""

    listen: str = DEFAULT_ADMIN_LISTEN
    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None  # set: every caller needs a certificate signed by it (mTLS)

    def __post_init__(self) -> None:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"admin-listen: expected HOST:PORT, got {self.listen!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("admin-tls-cert, admin-tls-key: give both or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise ConfigError("admin-client-ca: mTLS needs admin-tls-cert and admin-tls-key too")
        if self.token_file is None and self.client_ca is None:
            # Anyone who can reach the port could unpin policy or lift a lockdown, and
            # loopback is no boundary: in a Kubernetes pod every container shares it.
            raise ConfigError(
                "admin-token-file, admin-client-ca: admin callers must authenticate; give a "
                "bearer token file or a CA for client certificates (mTLS)"
            )

    @property
    def host(self) -> str:
        """The host to bind, without IPv6 brackets."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The port to bind (0 picks a free one)."""
        return int(self.listen.rpartition(":")[2])


def read_token(path: Path) -> bytes:
    """The token in ``path``; the file must not be readable or writable by others."""
    try:
        with path.open("rb") as file:  # fstat the file that is read: no check-then-open race
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IROTH | stat.S_IWOTH):
                raise ConfigError(
                    f"admin-token-file: {path} is accessible by others (mode "
                    f"{stat.S_IMODE(mode):04o}); chmod 600 it (0400/0440 for a mounted Secret)"
                )
            token = file.read(4096).strip()
    except OSError as exc:
        raise ConfigError(f"admin-token-file: cannot read {path}: {exc.strerror}") from None
    if len(token) < _MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"admin-token-file: {path} must hold a token of at least {_MIN_TOKEN_LENGTH} "
            "characters, e.g. from `openssl rand -hex 32`"
        )
    return token


def ssl_context(config: AdminConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
        if config.client_ca is not None:
            context.load_verify_locations(cafile=str(config.client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"admin-tls: cannot load the certificate files: {exc}") from None
    return context
