"""Keys shared by the identity tests: generated once per session (RSA is slow)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.signing import SigningKey, ec_key, ed25519_key, rsa_key


@pytest.fixture(scope="session")
def rs256() -> SigningKey:
    return rsa_key("rsa-1")


@pytest.fixture(scope="session")
def ps256() -> SigningKey:
    return rsa_key("rsa-pss", "PS256")


@pytest.fixture(scope="session")
def es256() -> SigningKey:
    return ec_key("ec-256", ec.SECP256R1(), "ES256")


@pytest.fixture(scope="session")
def es384() -> SigningKey:
    return ec_key("ec-384", ec.SECP384R1(), "ES384")


@pytest.fixture(scope="session")
def eddsa() -> SigningKey:
    return ed25519_key("ed-1")


@pytest.fixture(scope="session")
def attacker() -> SigningKey:
    """Not trusted by any issuer; reuses the kid of `rs256`."""
    return rsa_key("rsa-1")


@pytest.fixture(scope="session")
def all_keys(
    rs256: SigningKey, ps256: SigningKey, es256: SigningKey, es384: SigningKey, eddsa: SigningKey
) -> dict[str, SigningKey]:
    return {key.alg: key for key in (rs256, ps256, es256, es384, eddsa)}
