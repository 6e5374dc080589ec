"""The server's TLS files on disk, and the two ways they get replaced while it runs.

`InPlace` rewrites each file where it is (a script, SPIRE's helper); `SecretVolume`
swaps them all at once the way the kubelet updates a mounted Secret: the new files
go to a fresh hidden directory, a ``..data`` symlink is renamed onto it, and the
visible names are symlinks through ``..data``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from tests.pki import CertificateAuthority, Issued

CERT, KEY, CA = "tls.crt", "tls.key", "ca.crt"  # the names in a cert-manager Secret
SERVER_IPS = ["127.0.0.1"]


class Volume(Protocol):
    """A directory holding ``tls.crt``, ``tls.key`` and ``ca.crt``."""

    path: Path

    def publish(self, files: Mapping[str, bytes]) -> None:
        """Make ``files`` (name → content) the current ones."""


class InPlace:
    """Plain files, each rewritten in place (truncated, then written)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def publish(self, files: Mapping[str, bytes]) -> None:
        for name, content in files.items():
            (self.path / name).write_bytes(content)


class SecretVolume:
    """A Kubernetes secret volume: every update is one atomic rename of ``..data``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def publish(self, files: Mapping[str, bytes]) -> None:
        version = self.path / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_bytes(content)
        staged = self.path / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.path / "..data")
        for name in files:
            visible = self.path / name
            if not visible.is_symlink():
                visible.symlink_to(f"..data/{name}")


def server_files(issued: Issued, client_ca: CertificateAuthority) -> dict[str, bytes]:
    """What a volume holds for the server: its certificate and key, and the client CA."""
    return {CERT: issued.cert_pem(), KEY: issued.key_pem(), CA: client_ca.cert_pem()}


def tls_settings(volume: Volume, *allow_clients: str) -> dict[str, Any]:
    """The ServerConfig settings serving the files of ``volume``."""
    return {
        "tls_cert": volume.path / CERT,
        "tls_key": volume.path / KEY,
        "client_ca": volume.path / CA,
        "allow_clients": allow_clients,
    }
