"""KeySet: which JWKs are accepted, skipped or refused, and which keys fit which alg."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from authz.identity import EMPTY_KEYS, SUPPORTED_ALGORITHMS, JwksError, KeySet
from tests.identity.signing import SigningKey, rsa_key


def test_supported_algorithms_are_asymmetric_only() -> None:
    assert {"RS256", "PS512", "ES256", "ES384", "ES512", "EdDSA"} <= SUPPORTED_ALGORITHMS
    assert not {alg for alg in SUPPORTED_ALGORITHMS if alg.startswith("HS") or alg == "none"}


def test_empty_key_set() -> None:
    assert EMPTY_KEYS is KeySet.EMPTY
    assert KeySet.EMPTY.candidates(None, "RS256") == ()
    assert KeySet.from_jwks({"keys": []}) == KeySet.EMPTY


INVALID: list[tuple[str, Any, str]] = [
    ("not-an-object", [], "JSON object"),
    ("keys-missing", {}, "'keys' list"),
    ("keys-not-a-list", {"keys": {"kty": "RSA"}}, "'keys' list"),
    ("key-not-an-object", {"keys": ["RSA"]}, r"keys\[0\]: a key must be a JSON object"),
    ("kid-not-a-string", {"keys": [{"kty": "RSA", "kid": 1}]}, r"keys\[0\]: 'kid' must be"),
    ("use-not-a-string", {"keys": [{"kty": "RSA", "use": True}]}, "'use' must be a string"),
    ("kty-missing", {"keys": [{"n": "AQAB"}]}, "'kty' must be a string"),
    ("key-ops-not-a-list", {"keys": [{"kty": "RSA", "key_ops": "verify"}]}, "'key_ops' must be"),
    ("rsa-without-n", {"keys": [{"kty": "RSA", "e": "AQAB"}]}, "invalid RSA key"),
    ("rsa-n-not-base64", {"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}, "invalid RSA key"),
    ("rsa-n-number", {"keys": [{"kty": "RSA", "n": 5, "e": "AQAB"}]}, "invalid RSA key"),
    ("ec-without-x", {"keys": [{"kty": "EC", "crv": "P-256", "y": "AA"}]}, "invalid EC key"),
    (
        "private-rsa",
        {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}]},
        "private key material",
    ),
    (
        "symmetric-secret",
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        r"private key material \(k\)",
    ),
]


@pytest.mark.parametrize(("jwks", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_jwks(jwks: Any, message: str) -> None:
    with pytest.raises(JwksError, match=message):
        KeySet.from_jwks(jwks)


def test_skipped_keys(rs256: SigningKey) -> None:
    small = rsa_key("small", bits=1024)
    secp256k1 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256K1()).public_key(), True)
    jwks = {
        "keys": [
            {**rs256.jwk, "kid": "enc", "use": "enc"},
            {**rs256.jwk, "kid": "encrypt-only", "key_ops": ["encrypt", "wrapKey"]},
            {**rs256.jwk, "kid": "oaep", "alg": "RSA-OAEP"},
            {**rs256.jwk, "kid": "hmac-pinned", "alg": "HS256"},
            {"kty": "future", "kid": "future"},
            {**secp256k1, "kid": "k1"},
            small.jwk,
        ]
    }
    assert KeySet.from_jwks(jwks) == KeySet.EMPTY


def test_a_key_whose_key_ops_allow_verify_is_used(rs256: SigningKey) -> None:
    jwks = {"keys": [{**rs256.jwk, "key_ops": ["verify"]}]}
    assert len(KeySet.from_jwks(jwks).candidates(rs256.kid, "RS256")) == 1


def _okp448() -> dict[str, Any]:
    return {
        **OKPAlgorithm.to_jwk(ed448.Ed448PrivateKey.generate().public_key(), True),
        "kid": "448",
    }


@pytest.fixture(scope="module")
def key_set(rs256: SigningKey, es256: SigningKey, es384: SigningKey, eddsa: SigningKey) -> KeySet:
    p521 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP521R1()).public_key(), True)
    pinned = {**rs256.jwk, "kid": "pinned", "alg": "PS256", "use": "sig"}
    jwks = {"keys": [rs256.jwk, es256.jwk, es384.jwk, eddsa.jwk, pinned, _okp448(), p521]}
    return KeySet.from_jwks(jwks)


CANDIDATES: list[tuple[str | None, str, int]] = [
    ("rsa-1", "RS256", 1),
    ("rsa-1", "PS512", 1),
    ("rsa-1", "ES256", 0),
    ("rsa-1", "EdDSA", 0),
    ("ec-256", "ES256", 1),
    ("ec-256", "ES384", 0),
    ("ec-256", "RS256", 0),
    ("ec-384", "ES384", 1),
    ("ec-384", "ES256", 0),
    (None, "ES512", 1),
    ("ed-1", "EdDSA", 1),
    ("448", "EdDSA", 1),
    ("ed-1", "ES256", 0),
    ("pinned", "PS256", 1),
    ("pinned", "RS256", 0),
    ("unknown", "RS256", 0),
    (None, "RS256", 1),
    (None, "PS256", 2),
    (None, "EdDSA", 2),
    (None, "HS256", 0),
    (None, "none", 0),
]


@pytest.mark.parametrize(
    ("kid", "alg", "count"), CANDIDATES, ids=[f"{kid}-{alg}" for kid, alg, _ in CANDIDATES]
)
def test_candidates(key_set: KeySet, kid: str | None, alg: str, count: int) -> None:
    assert len(key_set.candidates(kid, alg)) == count


def test_key_sets_compare_by_key_material(rs256: SigningKey, attacker: SigningKey) -> None:
    assert KeySet.from_jwks({"keys": [rs256.jwk]}) == KeySet.from_jwks({"keys": [rs256.jwk]})
    assert rs256.kid == attacker.kid
    assert KeySet.from_jwks({"keys": [rs256.jwk]}) != KeySet.from_jwks({"keys": [attacker.jwk]})


_EXPORT: dict[str, Any] = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}


@pytest.mark.parametrize("alg", list(_EXPORT))
def test_a_jwks_holding_a_private_key_is_refused_whole(
    all_keys: dict[str, SigningKey], rs256: SigningKey, alg: str
) -> None:
    leaked = {**_EXPORT[alg].to_jwk(all_keys[alg].private, as_dict=True), "kid": "leaked"}
    # A good public key beside it does not make the set usable: the publisher leaked a
    # signing key, and whoever holds it can mint tokens this set would accept.
    with pytest.raises(JwksError, match=r"keys\[1\]: contains private key material \(d"):
        KeySet.from_jwks({"keys": [rs256.jwk, leaked]})


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
@pytest.mark.parametrize("use", ["sig", "enc"])
def test_any_private_member_refuses_the_jwks(rs256: SigningKey, use: str, member: str) -> None:
    # Also on a key that would otherwise be skipped (use: enc): a leak is never ignored.
    jwk = {**rs256.jwk, "use": use, member: "AQAB"}
    with pytest.raises(JwksError, match=rf"private key material \({member}\)"):
        KeySet.from_jwks({"keys": [jwk]})


# Public keys that cannot be what they claim: refused, never half-used.
BROKEN: list[tuple[str, str, dict[str, Any], str]] = [
    ("rsa-exponent-1", "RS256", {"e": "AQ"}, "invalid RSA key: e must be >= 3"),
    ("rsa-exponent-even", "RS256", {"e": "BA"}, "invalid RSA key: e must be odd"),
    ("ec-point-off-curve", "ES256", {"y": "AAAA" * 10 + "AAA"}, "invalid EC key"),
    ("ec-curve-relabelled", "ES256", {"crv": "P-384"}, "invalid EC key"),
    ("okp-short-x", "EdDSA", {"x": "AAAA" * 10 + "AA"}, "invalid OKP key"),
    ("okp-curve-relabelled", "EdDSA", {"crv": "Ed448"}, "invalid OKP key"),
]


@pytest.mark.parametrize(
    ("alg", "changes", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_a_broken_public_key_is_refused(
    all_keys: dict[str, SigningKey], alg: str, changes: dict[str, str], message: str
) -> None:
    with pytest.raises(JwksError, match=message):
        KeySet.from_jwks({"keys": [{**all_keys[alg].jwk, **changes}]})


def test_a_key_agreement_curve_is_skipped() -> None:
    x25519_jwk = {"kty": "OKP", "crv": "X25519", "x": "AAAA" * 10 + "AAA", "kid": "ecdh"}
    assert KeySet.from_jwks({"keys": [x25519_jwk]}) == KeySet.EMPTY
