"""Local signing keys and tokens, for trying the service and for tests.

Production tokens come from an identity provider; these helpers exist so a
newcomer can mint a token that the example bundle accepts, with a key that
never leaves their machine.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

__all__ = ["KEY_ALGORITHMS", "jwks_for", "mint", "new_private_key", "write_key_pair"]

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
KEY_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA")


def new_private_key(alg: str) -> Any:
    """A fresh private key fitting ``alg``."""
    if alg in _CURVES:
        return ec.generate_private_key(_CURVES[alg]())
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {alg!r}; use one of {', '.join(KEY_ALGORITHMS)}")


def jwks_for(private_key: Any, kid: str, alg: str) -> dict[str, Any]:
    """The public JWKS (one key) matching ``private_key``."""
    family = "EdDSA" if alg == "EdDSA" else alg
    jwk = get_default_algorithms()[family].to_jwk(private_key.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return {"keys": [jwk]}


def write_key_pair(key_path: Path, jwks_path: Path, kid: str, alg: str) -> None:
    """Write a new private key (PEM, mode 0600) and its public JWKS."""
    private_key = new_private_key(alg)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with a wider mode
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    jwks_path.parent.mkdir(parents=True, exist_ok=True)
    jwks_path.write_text(json.dumps(jwks_for(private_key, kid, alg), indent=2) + "\n")


def mint(
    key_path: Path,
    kid: str,
    alg: str,
    claims: dict[str, Any],
    ttl_seconds: int,
    now: float | None = None,
) -> str:
    """A signed JWT with ``claims`` plus ``iat``, ``exp`` and ``jti`` (unless given)."""
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    issued = int(time.time() if now is None else now)
    body = {"iat": issued, "exp": issued + ttl_seconds, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, private_key, algorithm=alg, headers={"kid": kid})  # type: ignore[arg-type]
