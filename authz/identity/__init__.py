"""Identity: who is calling. Verified JWTs from trusted issuers, and mTLS peers.

- `keys`: the public keys of an issuer (`KeySet`), from a JWKS document.
- `tokens`: finding a token in request headers and verifying it (`TokenVerifier`).
- `peers`: the calling workload's principal, namespace and service account.
"""

from authz.identity.keys import EMPTY_KEYS, SUPPORTED_ALGORITHMS, JwksError, KeySet
from authz.identity.peers import Peer, istio_form, parse_principal
from authz.identity.tokens import (
    HeaderSource,
    Issuer,
    Token,
    TokenError,
    TokenErrorCode,
    TokenVerifier,
    extract_token,
    header_sources,
)

__all__ = [
    "EMPTY_KEYS",
    "SUPPORTED_ALGORITHMS",
    "HeaderSource",
    "Issuer",
    "JwksError",
    "KeySet",
    "Peer",
    "Token",
    "TokenError",
    "TokenErrorCode",
    "TokenVerifier",
    "extract_token",
    "header_sources",
    "istio_form",
    "parse_principal",
]
