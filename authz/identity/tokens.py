"""Tokens: finding a bearer JWT in a request and verifying it against trusted issuers.

`TokenVerifier.verify` turns a compact JWT into a `Token` (verified claims and
the attributes policy reads: principal, audiences, roles, tenant) or a
`TokenError`. It fails closed and never raises: a request with a token that
cannot be verified for any reason is `401 invalid_token` (spec §5 step 4).
Time is an argument, never read from the clock, so tests and offline policy
evaluation can fix it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import jwt
from cachetools import LRUCache
from jwt.algorithms import OKPAlgorithm

from authz.identity.claims import (
    ValidityWindow,
    audiences_of,
    roles_from,
    tenant_from,
    validity_window,
)
from authz.identity.jws import MalformedToken, split_compact
from authz.identity.keys import EMPTY_KEYS, FULLY_SPECIFIED_EDDSA, SUPPORTED_ALGORITHMS, KeySet

__all__ = [
    "HeaderSource",
    "Issuer",
    "KeyProvider",
    "KeySource",
    "RemoteJwks",
    "Token",
    "TokenError",
    "TokenErrorCode",
    "TokenVerifier",
    "extract_token",
    "header_sources",
]


@dataclass(frozen=True, slots=True)
class HeaderSource:
    """A request header that may carry a token, and the prefix before the token."""

    name: str  # lower-case header name
    prefix: str  # e.g. "Bearer "; matched case-insensitively; may be ""


@dataclass(frozen=True, slots=True)
class RemoteJwks:
    """Where a remote issuer's keys are fetched from (`jwksUri` or `discovery: true`)."""

    issuer: str
    jwks_uri: str | None  # None: from the issuer's OpenID Connect discovery document
    ca_pem: bytes | None  # the issuer's CA bundle (`caFile`); None: the system's


@dataclass(frozen=True, slots=True)
class Issuer:
    """A trusted JWT issuer (spec §2, `kind: Issuer`).

    `keys` are its configured keys (`jwks`, `jwksFile`); an issuer with `remote`
    set has none of its own and is verified with keys fetched at run time.
    """

    name: str
    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    keys: KeySet
    roles_claim: str | None
    tenant_claim: str | None
    from_headers: tuple[HeaderSource, ...]
    leeway_seconds: int
    remote: RemoteJwks | None = None


class KeySource(Protocol):
    """The current keys of a remote issuer (see `authz.identity.remote`)."""

    @property
    def keys(self) -> KeySet: ...

    def unknown_kid(self) -> None:
        """A token named a key that `keys` lacks (or `keys` is still empty)."""


class KeyProvider(Protocol):
    """Gives each remote issuer its key source."""

    def source(self, remote: RemoteJwks) -> KeySource: ...


@dataclass(frozen=True, slots=True)
class Token:
    """A verified token. `claims` is shared through the cache and must not be mutated."""

    claims: dict[str, Any]
    issuer: str
    subject: str
    principal: str
    audiences: tuple[str, ...]
    roles: tuple[str, ...]
    tenant: str
    expires_at: float


class TokenErrorCode(StrEnum):
    """Why a token was refused; stable words for logs and metric labels."""

    INVALID = "invalid"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNKNOWN_ISSUER = "unknown_issuer"
    ALG_NOT_ALLOWED = "alg_not_allowed"
    UNSUPPORTED_HEADER = "unsupported_header"
    UNKNOWN_KID = "unknown_kid"
    KEYS_UNAVAILABLE = "keys_unavailable"
    BAD_SIGNATURE = "bad_signature"
    BAD_CLAIMS = "bad_claims"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_AUDIENCE = "bad_audience"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class TokenError:
    """A refused token. `detail` is for logs only: never sent to clients, never the token."""

    detail: str
    code: TokenErrorCode = TokenErrorCode.INVALID


def extract_token(headers: Mapping[str, str], sources: Sequence[HeaderSource]) -> str | None:
    """The token from the first source whose header is present with the right prefix."""
    for source in sources:
        value = headers.get(source.name)
        if value is None:
            continue
        value = value.lstrip()
        if value[: len(source.prefix)].lower() != source.prefix.lower():
            continue
        token = value[len(source.prefix) :].strip()
        if token:
            return token
    return None


def header_sources(issuers: Sequence[Issuer]) -> tuple[HeaderSource, ...]:
    """Every issuer's header sources, in order, without duplicates."""
    return tuple(dict.fromkeys(source for issuer in issuers for source in issuer.from_headers))


# PyJWS checks only the signature (and that `alg` is the one we pass). Every claim
# check happens in `claims.py` against the caller's `now`, so time can be fixed.
# RFC 9864's `Ed25519` / `Ed448` verify like `EdDSA`; the key set only ever offers a
# key of the named curve for them.
_SIGNATURES = jwt.PyJWS()
for _name in sorted(FULLY_SPECIFIED_EDDSA):
    _SIGNATURES.register_algorithm(_name, OKPAlgorithm())


@dataclass(frozen=True, slots=True)
class _Cached:
    token: Token
    window: ValidityWindow
    source: KeySource | None  # a remote issuer's keys: the entry lapses when they change
    keys: KeySet


#: Refusals that cost a signature check and that no later moment can undo: the
#: signature does not verify with the issuer's keys, or it does and the claims can
#: never pass (expired, wrong audience or claims). Kept like verified tokens, so a
#: client replaying a stale or forged token pays for one signature check, not one
#: per request. Never kept: an unknown kid (the next keys may know it), keys not
#: fetched yet, a token not valid yet, and everything refused before the signature.
_REMEMBERED = frozenset(
    {
        TokenErrorCode.BAD_SIGNATURE,
        TokenErrorCode.EXPIRED,
        TokenErrorCode.BAD_AUDIENCE,
        TokenErrorCode.BAD_CLAIMS,
    }
)


@dataclass(frozen=True, slots=True)
class _Refused:
    error: TokenError
    source: KeySource | None  # as for _Cached: the entry lapses when the keys change
    keys: KeySet


class TokenVerifier:
    """Verifies tokens for one policy bundle's issuers, caching successes, and the
    refusals that took a signature check and cannot change (:data:`_REMEMBERED`).

    Both caches are keyed by the exact token string, bounded by `cache_size` each,
    and belong to this verifier; a new bundle builds a new verifier, and an entry
    made with a remote issuer's keys lapses when those keys are refreshed with a
    change, so key rotations never meet stale entries. Remote issuers need a
    `key_provider`; without one their tokens are refused. Single-threaded (asyncio)
    use only.
    """

    def __init__(
        self,
        issuers: Sequence[Issuer],
        *,
        cache_size: int = 10_000,
        max_token_bytes: int = 16_384,
        key_provider: KeyProvider | None = None,
    ) -> None:
        if cache_size < 0 or max_token_bytes < 0:
            raise ValueError("cache_size and max_token_bytes must not be negative")
        self._issuers: dict[str, Issuer] = {}
        self._algorithms: dict[str, frozenset[str]] = {}
        self._sources: dict[str, KeySource | None] = {}
        for issuer in issuers:
            if issuer.issuer in self._issuers:
                raise ValueError(f"issuer {issuer.issuer!r} is configured twice")
            self._issuers[issuer.issuer] = issuer
            # Intersected with SUPPORTED_ALGORITHMS so that `none` or HS* never verify,
            # even if a configuration that lists them slipped past validation.
            self._algorithms[issuer.issuer] = frozenset(issuer.algorithms) & SUPPORTED_ALGORITHMS
            if issuer.remote is not None:
                source = key_provider.source(issuer.remote) if key_provider else _NO_KEYS
                self._sources[issuer.issuer] = source
        self._cache: LRUCache[str, _Cached] | None = (
            LRUCache(maxsize=cache_size) if cache_size else None
        )
        self._refused: LRUCache[str, _Refused] | None = (
            LRUCache(maxsize=cache_size) if cache_size else None
        )
        self._max_token_bytes = max_token_bytes

    def verify(self, token: str, now: float) -> Token | TokenError:
        """Verify `token` at time `now` (seconds since the epoch). Never raises."""
        try:
            if not isinstance(token, str) or len(token) > self._max_token_bytes:
                return TokenError("token too large or not a string", TokenErrorCode.TOO_LARGE)
            if not math.isfinite(now):
                # NaN compares false with everything: it would pass every time check.
                return TokenError("evaluation time is not finite", TokenErrorCode.INTERNAL)
            if (hit := self._cached(token, now)) is not None:
                return hit
            if (refused := self._refused_before(token)) is not None:
                return refused
            result = self._verify(token, now)
            if isinstance(result, _Cached):
                self._remember(token, result, now)
                return result.token
            if isinstance(result, _Refused):
                if self._refused is not None:
                    self._refused[token] = result
                return result.error
            return result
        except Exception as exc:  # fail closed, whatever went wrong
            # Only the type: an exception message could quote the token.
            return TokenError(f"unexpected {type(exc).__name__}", TokenErrorCode.INTERNAL)

    def key_source(self, issuer: str) -> KeySource | None:
        """Where the remote keys of ``issuer`` (its ``iss``) come from; None for an issuer
        with keys of its own (they never change within a bundle) or an unknown one.

        Whoever keeps a result that a token verified must drop it once the source's
        ``keys`` is another object, as this verifier's own cache does.
        """
        return self._sources.get(issuer)

    def _cached(self, token: str, now: float) -> Token | None:
        if self._cache is None:
            return None
        entry = self._cache.get(token)
        if entry is None:
            return None
        if entry.source is not None and entry.source.keys is not entry.keys:
            # The issuer's keys were refreshed: the signing key may be gone.
            del self._cache[token]
            return None
        # Never served past `exp` (even inside the leeway): drop it, and let a full
        # verification decide, so the cache cannot extend a token's life.
        if now > entry.window.expires_at:
            del self._cache[token]
            return None
        if now < entry.window.not_before:
            return None
        return entry.token

    def _refused_before(self, token: str) -> TokenError | None:
        """The refusal kept for `token`, unless its issuer's keys changed since."""
        if self._refused is None:
            return None
        entry = self._refused.get(token)
        if entry is None:
            return None
        if entry.source is not None and entry.source.keys is not entry.keys:
            del self._refused[token]
            return None
        return entry.error

    def _remember(self, token: str, entry: _Cached, now: float) -> None:
        if self._cache is not None and now <= entry.window.expires_at:
            self._cache[token] = entry

    def _verify(self, token: str, now: float) -> _Cached | _Refused | TokenError:
        try:
            parts = split_compact(token)
        except MalformedToken as exc:
            return TokenError(f"malformed token: {exc}", TokenErrorCode.MALFORMED)
        header = parts.header
        # `jku`, `x5u`, `jwk` and `x5c` are ignored on purpose: keys come only from
        # the issuer's configured KeySet, so a token cannot bring its own key.
        if "crit" in header:
            # RFC 7515 §4.1.11: we understand no extensions, so a token that marks
            # one critical must be refused rather than verified without it.
            return TokenError("crit header present", TokenErrorCode.UNSUPPORTED_HEADER)
        iss = parts.payload.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            return TokenError("unknown issuer", TokenErrorCode.UNKNOWN_ISSUER)
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms[issuer.issuer]:
            return TokenError(f"alg not allowed for {issuer.name}", TokenErrorCode.ALG_NOT_ALLOWED)
        if kid is not None and not isinstance(kid, str):
            return TokenError("kid is not a string", TokenErrorCode.MALFORMED)
        source = self._sources.get(issuer.issuer)
        keys = issuer.keys if source is None else source.keys
        claims = _verify_signature(token, keys, kid, alg)
        if isinstance(claims, TokenError):
            if source is not None and claims.code is TokenErrorCode.UNKNOWN_KID:
                source.unknown_kid()
                if keys is EMPTY_KEYS:
                    return TokenError(
                        f"keys of {issuer.name} not fetched yet", TokenErrorCode.KEYS_UNAVAILABLE
                    )
            accepted: _Cached | TokenError = claims
        else:
            accepted = _accept(issuer, claims, now, source, keys)
        if isinstance(accepted, TokenError) and accepted.code in _REMEMBERED:
            return _Refused(accepted, source, keys)
        return accepted


def _verify_signature(
    token: str, keys: KeySet, kid: str | None, alg: str
) -> dict[str, Any] | TokenError:
    """The verified payload, trying each key of the right type under `kid`."""
    candidates = keys.candidates(kid, alg)
    if not candidates:
        return TokenError(f"unknown kid (no {alg} key)", TokenErrorCode.UNKNOWN_KID)
    for key in candidates:
        try:
            # `alg` passed the issuer's allow-list and `key` fits it: the token
            # header chose nothing beyond a membership test (RFC 8725 §2.1).
            payload = json.loads(_SIGNATURES.decode(token, key, algorithms=[alg]))
        except jwt.PyJWTError:
            continue
        except ValueError:  # a signed payload that is not JSON
            return TokenError("payload is not JSON", TokenErrorCode.MALFORMED)
        if isinstance(payload, dict):
            return payload
        return TokenError("payload is not a JSON object", TokenErrorCode.MALFORMED)
    return TokenError("bad signature", TokenErrorCode.BAD_SIGNATURE)


def _accept(
    issuer: Issuer,
    claims: dict[str, Any],
    now: float,
    source: KeySource | None,
    keys: KeySet,
) -> _Cached | TokenError:
    """Check the verified claims and build the Token."""
    if claims.get("iss") != issuer.issuer:
        return TokenError("iss mismatch", TokenErrorCode.BAD_CLAIMS)
    window = validity_window(claims, float(issuer.leeway_seconds))
    if isinstance(window, str):
        return TokenError(window, TokenErrorCode.BAD_CLAIMS)
    if window.expired(now):
        return TokenError("expired beyond leeway", TokenErrorCode.EXPIRED)
    if window.premature(now):
        return TokenError("nbf or iat in the future", TokenErrorCode.NOT_YET_VALID)
    audiences = audiences_of(claims)
    if audiences is None or not set(audiences).intersection(issuer.audiences):
        return TokenError(f"audience not accepted by {issuer.name}", TokenErrorCode.BAD_AUDIENCE)
    subject = claims.get("sub", "")
    if not isinstance(subject, str):
        return TokenError("sub is not a string", TokenErrorCode.BAD_CLAIMS)
    token = Token(
        claims=claims,
        issuer=issuer.issuer,
        subject=subject,
        principal=f"{issuer.issuer}/{subject}" if subject else "",
        audiences=audiences,
        roles=roles_from(claims, issuer.roles_claim),
        tenant=tenant_from(claims, issuer.tenant_claim),
        expires_at=window.expires_at,
    )
    return _Cached(token=token, window=window, source=source, keys=keys)


class _Unavailable:
    """The key source of a remote issuer when nothing fetches keys (offline tools)."""

    keys = EMPTY_KEYS

    def unknown_kid(self) -> None:
        pass


_NO_KEYS: KeySource = _Unavailable()
