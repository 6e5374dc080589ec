"""Test signing: real keys, their public JWKs, tokens signed with PyJWT, and verifying them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from authz.identity import (
    HeaderSource,
    Issuer,
    KeySet,
    Token,
    TokenError,
    TokenErrorCode,
    TokenVerifier,
)

NOW = 1_800_000_000.0
ISS = "https://idp.example.com"
AUD = "shop-api"
BEARER = HeaderSource(name="authorization", prefix="Bearer ")


@dataclass(frozen=True)
class SigningKey:
    """A private key, the algorithm it signs with, and its public JWK."""

    kid: str
    alg: str
    private: Any

    @property
    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if self.alg.startswith(("RS", "PS")):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif self.alg.startswith("ES"):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid}


def rsa_key(kid: str, alg: str = "RS256", bits: int = 2048) -> SigningKey:
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_key(kid: str, curve: ec.EllipticCurve, alg: str) -> SigningKey:
    return SigningKey(kid, alg, ec.generate_private_key(curve))


def ed25519_key(kid: str) -> SigningKey:
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def ed448_key(kid: str) -> SigningKey:
    return SigningKey(kid, "EdDSA", ed448.Ed448PrivateKey.generate())


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid payload at NOW; an override of None removes the claim."""
    base: dict[str, Any] = {
        "iss": ISS,
        "sub": "user-1",
        "aud": AUD,
        "exp": NOW + 300,
        "iat": NOW - 10,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: SigningKey, payload: dict[str, Any], **headers: Any) -> str:
    """A token signed by `key`; header overrides (e.g. kid=None drops the kid)."""
    header: dict[str, Any] = {"kid": key.kid, **headers}
    header = {name: value for name, value in header.items() if value is not None}
    alg = header.pop("alg", key.alg)
    # PyJWS rather than jwt.encode: the latter refuses some bad claims we must test.
    return jwt.PyJWS().encode(json.dumps(payload).encode(), key.private, alg, header)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], payload: Any, signature: bytes = b"") -> str:
    """A hand-built compact JWS, for tokens PyJWT refuses to produce."""
    return ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature))
    )


def hand_signed(header: dict[str, Any], payload: Any, signer: Callable[[bytes], bytes]) -> str:
    """A compact JWS whose signature `signer` makes over the signing input, for tokens
    PyJWT refuses to sign (a key of the wrong curve, a padding the header does not name)."""
    signing_input = compact(header, payload).rsplit(".", 1)[0]
    return f"{signing_input}.{b64(signer(signing_input.encode()))}"


def rsa_signer(
    key: SigningKey, pad: padding.AsymmetricPadding | None = None
) -> Callable[[bytes], bytes]:
    """Signs with `key` and SHA-256: PKCS#1 v1.5 (RS256) unless `pad` says otherwise."""
    private: rsa.RSAPrivateKey = key.private
    return lambda data: private.sign(data, pad or padding.PKCS1v15(), hashes.SHA256())


def ecdsa_signer(key: SigningKey, digest: hashes.HashAlgorithm) -> Callable[[bytes], bytes]:
    """Raw r||s ECDSA signatures (RFC 7518 §3.4) with any digest, whatever the curve."""
    private: ec.EllipticCurvePrivateKey = key.private
    size = (private.curve.key_size + 7) // 8

    def signer(data: bytes) -> bytes:
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(digest)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    return signer


def issuer(*keys: SigningKey, **overrides: Any) -> Issuer:
    """An Issuer trusting `keys`, with RS256/PS256/ES256/ES384/EdDSA allowed."""
    fields: dict[str, Any] = {
        "name": "shop-idp",
        "issuer": ISS,
        "audiences": (AUD,),
        "algorithms": ("RS256", "PS256", "ES256", "ES384", "EdDSA"),
        "keys": KeySet.from_jwks({"keys": [key.jwk for key in keys]}),
        "roles_claim": "roles",
        "tenant_claim": "tenant",
        "from_headers": (BEARER,),
        "leeway_seconds": 30,
    }
    fields.update(overrides)
    return Issuer(**fields)


def verify(issuers: Issuer | list[Issuer], token: str, now: float = NOW) -> Token | TokenError:
    """`token` verified at `now` by a new TokenVerifier trusting `issuers`."""
    return TokenVerifier(issuers if isinstance(issuers, list) else [issuers]).verify(token, now)


def expect_error(result: Token | TokenError, code: TokenErrorCode) -> None:
    """`result` is a refusal with `code`."""
    assert isinstance(result, TokenError), result
    assert result.code == code, result.detail
