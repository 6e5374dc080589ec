"""One side of an mTLS connection in the dev stack: its certificate files and whom it trusts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mtls"]


@dataclass(frozen=True, slots=True)
class Mtls:
    """Own certificate (chain) and private key, the CA the peer's certificate must chain
    to, and optionally the SPIFFE ID (URI SAN) the peer must present (PEM files)."""

    cert: Path
    key: Path
    ca: Path
    peer_id: str | None = None  # None: any certificate from ``ca``
