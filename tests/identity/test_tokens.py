"""TokenVerifier.verify: what verifies, what is refused and why, and the cache.

Forgeries (algorithm confusion, `alg: none`, keys brought by the token, hostile `kid`s,
`crit`, oversized tokens, exact leeway boundaries) are in `test_hardening.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

import pytest

from authz.identity import (
    Issuer,
    KeySet,
    Token,
    TokenError,
    TokenErrorCode,
    TokenVerifier,
)
from tests.identity.signing import (
    AUD,
    ISS,
    NOW,
    SigningKey,
    b64,
    claims,
    compact,
    expect_error,
    issuer,
    sign,
    verify,
)

Code = TokenErrorCode
Keys = dict[str, SigningKey]


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
def test_each_supported_algorithm_verifies(all_keys: Keys, alg: str) -> None:
    key = all_keys[alg]
    token = sign(key, claims())
    result = verify(issuer(*all_keys.values()), token)
    assert result == Token(
        claims=claims(),
        issuer=ISS,
        subject="user-1",
        principal=f"{ISS}/user-1",
        audiences=(AUD,),
        roles=(),
        tenant="",
        expires_at=NOW + 300,
    )


# Each case builds (token, issuer to trust) from the session keys (by alg, plus "attacker").
Case = Callable[[Keys], tuple[str, Issuer]]


def with_claims(**overrides: Any) -> Case:
    """A token from the trusted RS256 key, with claims changed (None removes one)."""
    return lambda k: (sign(k["RS256"], claims(**overrides)), issuer(k["RS256"]))


def with_header(**headers: Any) -> Case:
    """A token from the trusted RS256 key, with header members changed."""
    return lambda k: (sign(k["RS256"], claims(), **headers), issuer(k["RS256"]))


def _by_attacker(k: Keys) -> tuple[str, Issuer]:
    """A token signed by the untrusted key (which reuses the trusted kid)."""
    return sign(k["attacker"], claims()), issuer(k["RS256"])


def _alg_missing(k: Keys) -> tuple[str, Issuer]:
    return compact({"kid": k["RS256"].kid}, claims(), b"x"), issuer(k["RS256"])


def _tampered(k: Keys) -> tuple[str, Issuer]:
    header, _payload, signature = sign(k["RS256"], claims()).split(".")
    forged = compact({}, claims(sub="admin")).split(".")[1]
    return f"{header}.{forged}.{signature}", issuer(k["RS256"])


def _alg_not_allowed(k: Keys) -> tuple[str, Issuer]:
    return sign(k["RS256"], claims()), issuer(k["RS256"], algorithms=("ES256",))


def _no_kid_no_fitting_key(k: Keys) -> tuple[str, Issuer]:
    return sign(k["ES256"], claims(), kid=None), issuer(k["RS256"])


def _key_type_mismatch(k: Keys) -> tuple[str, Issuer]:
    ec_under_shared_kid = dataclasses.replace(k["ES256"], kid="shared")
    rsa_under_shared_kid = dataclasses.replace(k["RS256"], kid="shared")
    return sign(rsa_under_shared_kid, claims()), issuer(ec_under_shared_kid)


def _encryption_key(k: Keys) -> tuple[str, Issuer]:
    jwks = {"keys": [{**k["RS256"].jwk, "use": "enc"}]}
    return sign(k["RS256"], claims()), issuer(keys=KeySet.from_jwks(jwks))


REFUSED: list[tuple[str, Case, TokenErrorCode]] = [
    ("wrong-key", _by_attacker, Code.BAD_SIGNATURE),
    ("tampered-payload", _tampered, Code.BAD_SIGNATURE),
    ("unknown-kid", with_header(kid="nope"), Code.UNKNOWN_KID),
    ("no-kid-no-fitting-key", _no_kid_no_fitting_key, Code.UNKNOWN_KID),
    ("alg-not-allowed", _alg_not_allowed, Code.ALG_NOT_ALLOWED),
    ("alg-missing", _alg_missing, Code.ALG_NOT_ALLOWED),
    ("ec-key-under-kid-with-rs256", _key_type_mismatch, Code.UNKNOWN_KID),
    ("key-use-enc", _encryption_key, Code.UNKNOWN_KID),
    ("exp-missing", with_claims(exp=None), Code.BAD_CLAIMS),
    ("exp-bool", with_claims(exp=True), Code.BAD_CLAIMS),
    ("exp-string", with_claims(exp=str(NOW + 300)), Code.BAD_CLAIMS),
    ("exp-infinity", with_claims(exp=float("inf")), Code.BAD_CLAIMS),
    ("exp-huge-int", with_claims(exp=10**400), Code.BAD_CLAIMS),
    ("expired-beyond-leeway", with_claims(exp=NOW - 31), Code.EXPIRED),
    ("nbf-in-future", with_claims(nbf=NOW + 31), Code.NOT_YET_VALID),
    ("iat-in-future", with_claims(iat=NOW + 31), Code.NOT_YET_VALID),
    ("nbf-not-number", with_claims(nbf="soon"), Code.BAD_CLAIMS),
    ("aud-wrong", with_claims(aud="other-api"), Code.BAD_AUDIENCE),
    ("aud-list-wrong", with_claims(aud=["a", "b"]), Code.BAD_AUDIENCE),
    ("aud-missing", with_claims(aud=None), Code.BAD_AUDIENCE),
    ("aud-empty-list", with_claims(aud=[]), Code.BAD_AUDIENCE),
    ("aud-list-with-number", with_claims(aud=[AUD, 1]), Code.BAD_AUDIENCE),
    ("iss-unknown", with_claims(iss="https://evil.example"), Code.UNKNOWN_ISSUER),
    ("iss-missing", with_claims(iss=None), Code.UNKNOWN_ISSUER),
    ("iss-not-string", with_claims(iss=[ISS]), Code.UNKNOWN_ISSUER),
    ("sub-not-string", with_claims(sub=42), Code.BAD_CLAIMS),
]


@pytest.mark.parametrize(
    ("case", "code"), [(c, code) for _, c, code in REFUSED], ids=[i for i, _, _ in REFUSED]
)
def test_refused(all_keys: Keys, attacker: SigningKey, case: Case, code: TokenErrorCode) -> None:
    token, trusted = case({**all_keys, "attacker": attacker})
    result = verify(trusted, token)
    expect_error(result, code)
    assert token not in cast(TokenError, result).detail


GARBAGE: list[tuple[str, Any]] = [
    ("empty", ""),
    ("two-segments", "a.b"),
    ("a.b.c", "a.b.c"),
    ("dots", "...."),
    ("non-base64", "!!!.@@@.###"),
    ("padded-base64", compact({"alg": "RS256"}, claims(), b"x").replace(".", "=.", 1)),
    ("non-ascii", "é.é.é"),
    ("header-not-json", f"{b64(b'{nope')}.{b64(b'{}')}.{b64(b'x')}"),
    ("header-json-array", compact(cast(Any, []), claims(), b"x")),
    ("payload-json-array", compact({"alg": "RS256", "kid": "rsa-1"}, [1, 2], b"x")),
    ("payload-json-string", compact({"alg": "RS256", "kid": "rsa-1"}, "s", b"x")),
    ("deeply-nested-json", f"{b64(b'[' * 5000)}.{b64(b'{}')}.{b64(b'x')}"),
    ("100kb-of-dots", "." * 100_000),
    ("none", None),
    ("bytes", b"a.b.c"),
]


@pytest.mark.parametrize("garbage", [g for _, g in GARBAGE], ids=[i for i, _ in GARBAGE])
@pytest.mark.parametrize("max_bytes", [16_384, 1_000_000], ids=["default-limit", "large-limit"])
def test_garbage_is_an_error_never_an_exception(
    rs256: SigningKey, garbage: Any, max_bytes: int
) -> None:
    verifier = TokenVerifier([issuer(rs256)], max_token_bytes=max_bytes)
    assert isinstance(verifier.verify(garbage, NOW), TokenError)


ACCEPTED: list[tuple[str, dict[str, Any], float, tuple[str, ...]]] = [
    ("expired-inside-leeway", claims(exp=NOW - 29), NOW, (AUD,)),
    ("nbf-inside-leeway", claims(nbf=NOW + 29), NOW, (AUD,)),
    ("iat-inside-leeway", claims(iat=NOW + 29), NOW, (AUD,)),
    ("aud-as-string", claims(aud=AUD), NOW, (AUD,)),
    ("aud-as-list", claims(aud=["other", AUD]), NOW, ("other", AUD)),
    ("integer-exp", claims(exp=int(NOW) + 5), NOW, (AUD,)),
    ("no-iat", claims(iat=None), NOW, (AUD,)),
]


@pytest.mark.parametrize(
    ("payload", "now", "audiences"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_accepted(
    rs256: SigningKey, payload: dict[str, Any], now: float, audiences: tuple[str, ...]
) -> None:
    result = verify(issuer(rs256), sign(rs256, payload), now)
    assert isinstance(result, Token), result
    assert result.audiences == audiences


def test_token_without_sub_has_no_principal(rs256: SigningKey) -> None:
    result = verify(issuer(rs256), sign(rs256, claims(sub=None)))
    assert isinstance(result, Token)
    assert (result.subject, result.principal) == ("", "")


def test_without_kid_every_fitting_key_is_tried(rs256: SigningKey, attacker: SigningKey) -> None:
    jwks = {"keys": [{**attacker.jwk, "kid": None}, {**rs256.jwk, "kid": None}]}
    jwks["keys"] = [{n: v for n, v in jwk.items() if v is not None} for jwk in jwks["keys"]]
    token = sign(rs256, claims(), kid=None)
    assert isinstance(verify(issuer(keys=KeySet.from_jwks(jwks)), token), Token)


def test_issuer_keys_do_not_verify_another_issuer(rs256: SigningKey, es256: SigningKey) -> None:
    other = issuer(es256, name="other-idp", issuer="https://other.example")
    token = sign(rs256, claims(iss="https://other.example"))
    expect_error(verify([issuer(rs256), other], token), Code.UNKNOWN_KID)


def test_duplicate_issuers_are_refused(rs256: SigningKey) -> None:
    with pytest.raises(ValueError, match="configured twice"):
        TokenVerifier([issuer(rs256), issuer(rs256, name="copy")])


ROLES: list[tuple[str, str | None, dict[str, Any], tuple[str, ...]]] = [
    ("list", "roles", {"roles": ["reader", "writer"]}, ("reader", "writer")),
    ("space-separated", "scope", {"scope": "read  write\tadmin"}, ("read", "write", "admin")),
    ("nested-path", "realm_access.roles", {"realm_access": {"roles": ["ops"]}}, ("ops",)),
    ("non-strings-ignored", "roles", {"roles": ["a", 1, None, {"b": 2}, ["c"], "d"]}, ("a", "d")),
    (
        "namespaced-claim-with-dots",
        "https://shop.example/roles",
        {"https://shop.example/roles": ["x"]},
        ("x",),
    ),
    ("missing", "roles", {}, ()),
    ("number", "roles", {"roles": 7}, ()),
    ("path-through-list", "realm_access.roles", {"realm_access": [{"roles": ["ops"]}]}, ()),
    ("not-configured", None, {"roles": ["a"]}, ()),
]


@pytest.mark.parametrize(
    ("path", "extra", "roles"), [r[1:] for r in ROLES], ids=[r[0] for r in ROLES]
)
def test_roles(
    rs256: SigningKey, path: str | None, extra: dict[str, Any], roles: tuple[str, ...]
) -> None:
    result = verify(issuer(rs256, roles_claim=path), sign(rs256, claims(**extra)))
    assert isinstance(result, Token)
    assert result.roles == roles


TENANTS: list[tuple[str, str | None, dict[str, Any], str]] = [
    ("string", "tenant", {"tenant": "acme"}, "acme"),
    ("nested", "org.tenant", {"org": {"tenant": "globex"}}, "globex"),
    ("number", "tenant", {"tenant": 7}, ""),
    ("list", "tenant", {"tenant": ["acme"]}, ""),
    ("missing", "tenant", {}, ""),
    ("not-configured", None, {"tenant": "acme"}, ""),
]


@pytest.mark.parametrize(
    ("path", "extra", "tenant"), [t[1:] for t in TENANTS], ids=[t[0] for t in TENANTS]
)
def test_tenant(rs256: SigningKey, path: str | None, extra: dict[str, Any], tenant: str) -> None:
    result = verify(issuer(rs256, tenant_claim=path), sign(rs256, claims(**extra)))
    assert isinstance(result, Token)
    assert result.tenant == tenant


def test_cache_hit_returns_an_equal_token(rs256: SigningKey) -> None:
    verifier = TokenVerifier([issuer(rs256)])
    token = sign(rs256, claims())
    first, second = verifier.verify(token, NOW), verifier.verify(token, NOW + 1)
    assert isinstance(first, Token)
    assert second == first


@pytest.mark.parametrize(
    ("later", "outcome"),
    [
        (NOW + 300, Token),  # at exp
        (NOW + 329, Token),  # past exp, inside leeway: verified again, not served from cache
        (NOW + 331, TokenError),  # beyond leeway
    ],
    ids=["at-exp", "inside-leeway", "beyond-leeway"],
)
def test_cached_token_is_not_returned_after_exp(
    rs256: SigningKey, later: float, outcome: type
) -> None:
    verifier = TokenVerifier([issuer(rs256)])
    token = sign(rs256, claims(exp=NOW + 300))
    assert isinstance(verifier.verify(token, NOW), Token)
    assert isinstance(verifier.verify(token, later), outcome)


def test_cache_rechecks_not_before(rs256: SigningKey) -> None:
    verifier = TokenVerifier([issuer(rs256)])
    token = sign(rs256, claims(nbf=NOW - 5))
    assert isinstance(verifier.verify(token, NOW), Token)
    expect_error(verifier.verify(token, NOW - 100), Code.NOT_YET_VALID)


def test_cache_can_be_disabled(rs256: SigningKey) -> None:
    verifier = TokenVerifier([issuer(rs256)], cache_size=0)
    token = sign(rs256, claims())
    assert verifier.verify(token, NOW) == verifier.verify(token, NOW)


def test_cache_is_bounded(rs256: SigningKey) -> None:
    verifier = TokenVerifier([issuer(rs256)], cache_size=2)
    tokens = [sign(rs256, claims(jti=str(n))) for n in range(5)]
    assert all(isinstance(verifier.verify(token, NOW), Token) for token in tokens)
    assert all(isinstance(verifier.verify(token, NOW), Token) for token in tokens)


@pytest.mark.parametrize("now", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_time_must_be_finite(rs256: SigningKey, now: float) -> None:
    verifier = TokenVerifier([issuer(rs256)])
    token = sign(rs256, claims())
    assert isinstance(verifier.verify(token, NOW), Token)
    assert isinstance(verifier.verify(token, now), TokenError)
