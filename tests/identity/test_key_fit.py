"""Which key verifies which algorithm: every asymmetric algorithm with a fitting key, and
no key for an algorithm it does not fit (a short RSA key, another curve, another padding).
"""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from authz.identity import SUPPORTED_ALGORITHMS, KeySet, Token, TokenErrorCode
from tests.identity.signing import (
    ISS,
    SigningKey,
    claims,
    ec_key,
    ecdsa_signer,
    ed448_key,
    expect_error,
    hand_signed,
    issuer,
    rsa_key,
    rsa_signer,
    sign,
    verify,
)

Code = TokenErrorCode


# --- Every asymmetric algorithm verifies with a fitting key, and only with one


@pytest.fixture(scope="module")
def extra_keys(rs256: SigningKey) -> dict[str, SigningKey]:
    """Keys beyond the shared ones: Ed448, P-521, the other RSA digests, a 2047-bit key."""
    return {
        "Ed448": ed448_key("ed-448"),
        "ES512": ec_key("ec-521", ec.SECP521R1(), "ES512"),
        **{
            alg: dataclasses.replace(rs256, alg=alg) for alg in ("RS384", "RS512", "PS384", "PS512")
        },
        "RSA-2047": rsa_key("rsa-2047", bits=2047),
    }


@pytest.mark.parametrize("name", ["Ed448", "ES512", "RS384", "RS512", "PS384", "PS512"])
def test_each_remaining_algorithm_verifies_with_a_fitting_key(
    extra_keys: dict[str, SigningKey], name: str
) -> None:
    key = extra_keys[name]
    trusted = issuer(key, algorithms=tuple(sorted(SUPPORTED_ALGORITHMS)))
    result = verify(trusted, sign(key, claims()))
    assert isinstance(result, Token), result
    assert result.principal == f"{ISS}/user-1"


def test_an_rsa_key_under_2048_bits_is_not_used(extra_keys: dict[str, SigningKey]) -> None:
    weak = extra_keys["RSA-2047"]
    assert weak.private.key_size == 2047
    # Hand-signed: PyJWT itself refuses to sign with so short a key.
    token = hand_signed({"alg": "RS256", "kid": weak.kid}, claims(), rsa_signer(weak))
    expect_error(verify(issuer(weak), token), Code.UNKNOWN_KID)


def test_an_ec_key_is_not_offered_for_another_curves_algorithm(
    es256: SigningKey, es384: SigningKey
) -> None:
    p256_as_es384 = hand_signed(
        {"alg": "ES384", "kid": es256.kid}, claims(), ecdsa_signer(es256, hashes.SHA384())
    )
    p384_as_es256 = hand_signed(
        {"alg": "ES256", "kid": es384.kid}, claims(), ecdsa_signer(es384, hashes.SHA256())
    )
    for token in (p256_as_es384, p384_as_es256):
        expect_error(verify(issuer(es256, es384), token), Code.UNKNOWN_KID)


def test_an_ec_key_pinned_to_another_curves_algorithm_is_not_used(es384: SigningKey) -> None:
    pinned = KeySet.from_jwks({"keys": [{**es384.jwk, "alg": "ES256"}]})
    assert pinned == KeySet.EMPTY
    expect_error(verify(issuer(keys=pinned), sign(es384, claims())), Code.UNKNOWN_KID)


@pytest.mark.parametrize(
    ("header_alg", "pad"),
    [("PS256", padding.PKCS1v15()), ("RS256", padding.PSS(padding.MGF1(hashes.SHA256()), 32))],
    ids=["ps256-header-pkcs1-signature", "rs256-header-pss-signature"],
)
def test_an_rsa_signature_with_another_padding_than_the_header_names_is_refused(
    rs256: SigningKey, header_alg: str, pad: padding.AsymmetricPadding
) -> None:
    token = hand_signed({"alg": header_alg, "kid": rs256.kid}, claims(), rsa_signer(rs256, pad))
    expect_error(verify(issuer(rs256), token), Code.BAD_SIGNATURE)
