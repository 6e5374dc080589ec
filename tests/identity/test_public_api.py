"""The public names of authz.identity, pinned: other packages code against them."""

from __future__ import annotations

import authz.identity


def test_public_api() -> None:
    assert set(authz.identity.__all__) == {
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
    }
    assert all(hasattr(authz.identity, name) for name in authz.identity.__all__)
