"""Key sets: the verified public JSON Web Keys of one trusted issuer.

A `KeySet` is built once from a JWKS document (inline, file or fetched; where it
came from is not this module's business) and answers one question per token:
which public keys may verify a signature made with this `alg` under this `kid`.
The answer is pre-computed, so a request costs one dictionary lookup.

A key is only ever offered for algorithms its type fits (RSA >= 2048 bits for
RS*/PS*, the matching NIST curve for each ES*, Ed25519/Ed448 for EdDSA). That,
and never offering symmetric keys, is what makes algorithm-confusion attacks
(an RSA public key used as an HMAC secret, an EC key fed to RSA code) impossible
whatever a token's header claims.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

__all__ = [
    "EMPTY_KEYS",
    "FULLY_SPECIFIED_EDDSA",
    "SUPPORTED_ALGORITHMS",
    "JwksError",
    "KeySet",
    "VerificationKey",
]

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS: dict[type[ec.EllipticCurve], str] = {
    ec.SECP256R1: "ES256",
    ec.SECP384R1: "ES384",
    ec.SECP521R1: "ES512",
}
_EC_CURVES = frozenset({"P-256", "P-384", "P-521"})
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_MIN_RSA_BITS = 2048

# RFC 9864's fully-specified names for EdDSA: each names one curve.
FULLY_SPECIFIED_EDDSA = frozenset({"Ed25519", "Ed448"})

# Asymmetric algorithms only. `none` is no signature at all, and HS* would make a
# published (public!) key usable as a shared secret, so neither may ever appear here.
SUPPORTED_ALGORITHMS: frozenset[str] = (
    _RSA_ALGORITHMS | frozenset(_EC_ALGORITHMS.values()) | {"EdDSA"} | FULLY_SPECIFIED_EDDSA
)

# Private JWK members (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2). A JWKS that carries
# them has leaked a signing key; we refuse it rather than quietly use the public half.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class JwksError(ValueError):
    """A JWKS document that cannot be used; the message says what is wrong and where."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One usable public key: its `kid` (may be absent) and the algorithms it fits."""

    kid: str | None
    algorithms: frozenset[str]
    public_key: Any  # compared by value, so a rotated key under the same kid is a change


_Index = dict[tuple[str | None, str], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class KeySet:
    """The public keys of one issuer, indexed by (kid, alg) for per-request lookup."""

    keys: tuple[VerificationKey, ...] = ()
    _index: _Index = field(init=False, repr=False, compare=False)

    EMPTY: ClassVar[KeySet]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", _build_index(self.keys))

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> KeySet:
        """Build a key set from a JWKS document (RFC 7517 §5); raises `JwksError`.

        Keys that are well-formed but not for us (`use` other than `sig`, an
        unsupported `kty`, curve or `alg`, RSA under 2048 bits) are skipped, so an
        identity provider that also publishes encryption keys keeps working.
        Malformed keys and private key material are errors.
        """
        if not isinstance(jwks, Mapping):
            raise JwksError("a JWKS must be a JSON object")
        entries = jwks.get("keys")
        if not isinstance(entries, list):
            raise JwksError("a JWKS must have a 'keys' list")
        parsed = (_parse_key(index, entry) for index, entry in enumerate(entries))
        return cls(tuple(key for key in parsed if key is not None))

    def candidates(self, kid: str | None, alg: str) -> tuple[Any, ...]:
        """Public keys that may verify an `alg` signature: those with `kid`, or all if None."""
        return self._index.get((kid, alg), ())


def _build_index(keys: Iterable[VerificationKey]) -> _Index:
    lists: dict[tuple[str | None, str], list[Any]] = {}
    for key in keys:
        for alg in key.algorithms:
            lists.setdefault((None, alg), []).append(key.public_key)
            if key.kid is not None:
                lists.setdefault((key.kid, alg), []).append(key.public_key)
    return {slot: tuple(found) for slot, found in lists.items()}


def _parse_key(index: int, entry: object) -> VerificationKey | None:
    where = f"keys[{index}]"
    if not isinstance(entry, Mapping):
        raise JwksError(f"{where}: a key must be a JSON object")
    jwk = dict(entry)
    kid, use, alg = (_optional_str(jwk, member, where) for member in ("kid", "use", "alg"))
    if leaked := sorted(_PRIVATE_MEMBERS & jwk.keys()):
        raise JwksError(f"{where}: contains private key material ({', '.join(leaked)})")
    if use is not None and use != "sig":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None:
        if not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops):
            raise JwksError(f"{where}: 'key_ops' must be a list of strings")
        if "verify" not in key_ops:  # RFC 7517 §4.3: not meant for checking signatures
            return None
    if alg is not None and alg not in SUPPORTED_ALGORITHMS:
        return None
    public_key = _load_public_key(jwk, where)
    if public_key is None:
        return None
    fitting = _fitting_algorithms(public_key)
    if alg is not None:
        # A key pinned to one algorithm by its publisher is offered for that one only.
        fitting &= {alg}
    if not fitting:
        return None
    return VerificationKey(kid=kid, algorithms=fitting, public_key=public_key)


def _optional_str(jwk: Mapping[str, Any], member: str, where: str) -> str | None:
    value = jwk.get(member)
    if value is not None and not isinstance(value, str):
        raise JwksError(f"{where}: '{member}' must be a string")
    return value


def _load_public_key(jwk: dict[str, Any], where: str) -> Any:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    try:
        if kty == "RSA":
            return RSAAlgorithm.from_jwk(jwk)
        if kty == "EC" and crv in _EC_CURVES:
            return ECAlgorithm.from_jwk(jwk)
        if kty == "OKP" and crv in _OKP_CURVES:
            return OKPAlgorithm.from_jwk(jwk)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise JwksError(f"{where}: invalid {kty} key: {exc}") from None
    if not isinstance(kty, str):
        raise JwksError(f"{where}: 'kty' must be a string")
    # Symmetric ("oct") keys and unknown key types or curves are not for signatures we accept.
    return None


def _fitting_algorithms(public_key: Any) -> frozenset[str]:
    """The algorithms whose verification code this key type is meant for."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS if public_key.key_size >= _MIN_RSA_BITS else frozenset()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(type(public_key.curve))
        return frozenset({alg}) if alg else frozenset()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return frozenset({"EdDSA", "Ed25519"})
    if isinstance(public_key, ed448.Ed448PublicKey):
        return frozenset({"EdDSA", "Ed448"})
    return frozenset()


# Defined last: building a KeySet needs the helpers above.
KeySet.EMPTY = KeySet()
EMPTY_KEYS = KeySet.EMPTY
