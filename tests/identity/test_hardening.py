"""Forged JOSE headers and oversized tokens: each refused for the reason it should be.

What a token's header controls (`alg`, `kid`, key-bearing members, `crit`) and its size,
used against `TokenVerifier.verify`: every forgery is refused with a stable error code,
and hostile headers are shown to cause no file, network or process access (PEP 578 audit
events). The rest of the hardening list lives beside it:

- `test_claim_boundaries.py`: another issuer or audience, exact `exp`/`nbf`/`iat` leeway
  boundaries;
- `test_key_fit.py`: which key verifies which algorithm (EdDSA over Ed448, every RSA digest,
  RSA under 2048 bits, EC curves, RSA paddings);
- `test_keys.py`: JWKS with private members, broken public keys, `use` other than `sig`;
- `test_tokens.py`: the supported algorithms, a tampered payload, an untrusted signer, a key
  of the wrong type under the named `kid`, an encryption key, one second either side of
  the leeway.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.utils import Buffer

from authz.identity import KeySet, Token, TokenError, TokenErrorCode, TokenVerifier
from authz.identity.keys import VerificationKey
from tests.identity.signing import (
    NOW,
    SigningKey,
    claims,
    compact,
    ed25519_key,
    expect_error,
    hand_signed,
    issuer,
    rsa_signer,
    sign,
    verify,
)
from tests.pki import CertificateAuthority

Code = TokenErrorCode
DEFAULT_LIMIT = 16_384  # TokenVerifier's default max_token_bytes: 16 KiB

# PEP 578 audit events that mean file, network or process access.
_IO_EVENTS = ("open", "os.", "shutil.", "glob.", "socket.", "urllib.", "http.", "subprocess.")


class _IoAudit:
    """Records I/O audit events of one thread while watching. An audit hook cannot be
    removed, so it stays installed for the session and is idle between tests."""

    def __init__(self) -> None:
        self._thread: int | None = None
        self.events: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self._thread == threading.get_ident() and event.startswith(_IO_EVENTS):
            self.events.append(f"{event}{args!r:.200}")

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        self.events, self._thread = [], threading.get_ident()
        try:
            yield self.events
        finally:
            self._thread = None


@pytest.fixture(scope="session")
def io_audit() -> _IoAudit:
    audit = _IoAudit()
    sys.addaudithook(audit)
    return audit


def verify_without_io(audit: _IoAudit, verifier: TokenVerifier, token: str) -> Token | TokenError:
    """Verify `token` (on a verifier already warmed up, so no lazy import opens a
    file) and check that it touched no file, socket or process."""
    with audit.watching() as events:
        result = verifier.verify(token, NOW)
    assert events == []
    return result


def test_the_io_audit_sees_file_and_socket_access(io_audit: _IoAudit) -> None:
    with io_audit.watching() as events, open(os.devnull, "rb"), socket.socket():
        pass
    assert any(event.startswith("open") for event in events)
    assert any(event.startswith("socket.") for event in events)


# --- Algorithm confusion: the issuer's public key used as an HMAC secret -------------


def _public(key: SigningKey, encoding: serialization.Encoding) -> bytes:
    public = key.private.public_key()
    return bytes(public.public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo))


SECRETS: dict[str, Callable[[SigningKey], bytes]] = {
    "spki-pem": lambda key: _public(key, serialization.Encoding.PEM),
    "spki-der": lambda key: _public(key, serialization.Encoding.DER),
    "jwk-json": lambda key: json.dumps(key.jwk).encode(),
    "jwk-json-canonical": lambda key: json.dumps(key.jwk, separators=(",", ":")).encode(),
}


def _hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    def signer(data: bytes) -> bytes:
        mac = hmac.HMAC(secret, hashes.SHA256())
        mac.update(data)
        return mac.finalize()

    return signer


@pytest.mark.parametrize("listed", [False, True], ids=["hs256-not-listed", "hs256-listed"])
@pytest.mark.parametrize("secret", list(SECRETS), ids=list(SECRETS))
@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_hs256_with_the_issuers_public_key_as_secret_is_refused(
    all_keys: dict[str, SigningKey], alg: str, secret: str, listed: bool
) -> None:
    key = all_keys[alg]
    token = hand_signed(
        {"alg": "HS256", "kid": key.kid}, claims(), _hmac_signer(SECRETS[secret](key))
    )
    # Even an issuer that (wrongly) lists HS256 gets no HMAC verification at all.
    algorithms = (key.alg, "HS256") if listed else (key.alg,)
    expect_error(verify(issuer(key, algorithms=algorithms), token), Code.ALG_NOT_ALLOWED)


# --- alg: none, in any spelling, with or without a signature -------------------------


def _unsigned(key: SigningKey, alg: str, signature: str | None) -> str:
    """A token with `alg`, the trusted kid, and `signature` as its third segment
    (None: only two segments; "real": the trusted key's RS256 signature of the token)."""
    signing_input = compact({"alg": alg, "kid": key.kid}, claims()).rsplit(".", 1)[0]
    if signature is None:
        return signing_input
    if signature == "real":
        return f"{signing_input}.{sign(key, claims()).rsplit('.', 1)[1]}"
    return f"{signing_input}.{signature}"


NONE_SIGNATURES: list[tuple[str, str | None, TokenErrorCode]] = [
    ("no-third-segment", None, Code.MALFORMED),
    ("empty-signature", "", Code.MALFORMED),
    ("junk-signature", "eA", Code.ALG_NOT_ALLOWED),
    ("real-rs256-signature", "real", Code.ALG_NOT_ALLOWED),
]


@pytest.mark.parametrize(
    ("signature", "code"),
    [case[1:] for case in NONE_SIGNATURES],
    ids=[case[0] for case in NONE_SIGNATURES],
)
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused_even_when_the_issuer_lists_it(
    rs256: SigningKey, alg: str, signature: str | None, code: TokenErrorCode
) -> None:
    token = _unsigned(rs256, alg, signature)
    expect_error(verify(issuer(rs256, algorithms=("RS256", alg)), token), code)


# --- Headers that bring a key: jku, x5u, jwk, x5c ------------------------------------


@pytest.fixture(scope="module")
def intruder() -> tuple[SigningKey, str]:
    """An untrusted ES256 key with the kid of the trusted `es256` key, and its
    self-signed certificate (base64 DER, as `x5c` carries it)."""
    authority = CertificateAuthority("intruder")
    der = authority.certificate.public_bytes(serialization.Encoding.DER)
    return SigningKey("ec-256", "ES256", authority.issued.key), base64.b64encode(der).decode()


KEY_HEADERS: dict[str, Callable[[SigningKey, str], Any]] = {
    "jku": lambda key, cert: "https://evil.example/jwks.json",
    "x5u": lambda key, cert: "https://evil.example/intruder.pem",
    "jwk": lambda key, cert: key.jwk,
    "x5c": lambda key, cert: [cert],
}

# How the forged token names a key: the trusted key's kid, none, or its own.
KID_CHOICES: list[tuple[str, str | None, TokenErrorCode]] = [
    ("trusted-kid", "ec-256", Code.BAD_SIGNATURE),
    ("no-kid", None, Code.BAD_SIGNATURE),
    ("own-kid", "intruder", Code.UNKNOWN_KID),
]


@pytest.mark.parametrize(
    ("kid", "code"), [c[1:] for c in KID_CHOICES], ids=[c[0] for c in KID_CHOICES]
)
@pytest.mark.parametrize("member", list(KEY_HEADERS))
def test_a_key_brought_by_the_token_is_never_used(
    io_audit: _IoAudit,
    es256: SigningKey,
    intruder: tuple[SigningKey, str],
    member: str,
    kid: str | None,
    code: TokenErrorCode,
) -> None:
    key, cert = intruder
    forger = dataclasses.replace(key, kid=kid or "intruder")
    token = sign(forger, claims(), kid=kid, **{member: KEY_HEADERS[member](forger, cert)})
    verifier = TokenVerifier([issuer(es256)])
    assert isinstance(verifier.verify(sign(es256, claims()), NOW), Token)  # warm-up
    expect_error(verify_without_io(io_audit, verifier, token), code)


@pytest.mark.parametrize("member", list(KEY_HEADERS))
def test_a_trusted_token_carrying_a_key_header_verifies_with_the_configured_key(
    io_audit: _IoAudit, es256: SigningKey, intruder: tuple[SigningKey, str], member: str
) -> None:
    token = sign(es256, claims(), **{member: KEY_HEADERS[member](*intruder)})
    verifier = TokenVerifier([issuer(es256)])
    assert isinstance(verifier.verify(sign(es256, claims(sub="warm-up")), NOW), Token)
    assert isinstance(verify_without_io(io_audit, verifier, token), Token)


# --- kid values that look like paths, URLs or injections -----------------------------

HOSTILE_KIDS: list[tuple[str, Any, TokenErrorCode]] = [
    ("relative-path", "../../etc/passwd", Code.UNKNOWN_KID),
    ("absolute-path", "/etc/passwd", Code.UNKNOWN_KID),
    ("device", "/dev/zero", Code.UNKNOWN_KID),
    ("file-url", "file:///etc/passwd", Code.UNKNOWN_KID),
    ("https-url", "https://evil/x", Code.UNKNOWN_KID),
    ("metadata-url", "http://169.254.169.254/latest/meta-data/", Code.UNKNOWN_KID),
    ("unc-path", "\\\\evil\\share\\key", Code.UNKNOWN_KID),
    ("trusted-kid-then-nul", "rsa-1\u0000", Code.UNKNOWN_KID),
    ("trusted-kid-then-path", "rsa-1/../rsa-1", Code.UNKNOWN_KID),
    ("sql", "' OR '1'='1", Code.UNKNOWN_KID),
    ("empty", "", Code.UNKNOWN_KID),
    ("very-long", "k" * 8_000, Code.UNKNOWN_KID),
    ("number", 7, Code.MALFORMED),
    ("float", 1.5, Code.MALFORMED),
    ("boolean", True, Code.MALFORMED),
    ("list", ["rsa-1"], Code.MALFORMED),
    ("object", {"$ne": None}, Code.MALFORMED),
]


@pytest.mark.parametrize(
    ("kid", "code"), [c[1:] for c in HOSTILE_KIDS], ids=[c[0] for c in HOSTILE_KIDS]
)
def test_a_hostile_kid_just_fails_without_any_io(
    io_audit: _IoAudit, rs256: SigningKey, kid: Any, code: TokenErrorCode
) -> None:
    # Signed by the trusted key itself: only the kid is wrong.
    token = hand_signed({"alg": "RS256", "kid": kid}, claims(), rsa_signer(rs256))
    assert len(token) < DEFAULT_LIMIT
    verifier = TokenVerifier([issuer(rs256)])
    assert isinstance(verifier.verify(sign(rs256, claims()), NOW), Token)  # warm-up
    expect_error(verify_without_io(io_audit, verifier, token), code)


# --- Size: refused before any parsing or cryptography --------------------------------


class _CountingEd25519Key(ed25519.Ed25519PublicKey):
    """A real Ed25519 public key that counts the signatures checked with it, so a test
    can show that no cryptography ran (without timing anything)."""

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key
        self.verifications = 0

    def verify(self, signature: Buffer, data: Buffer) -> None:
        self.verifications += 1
        self._key.verify(signature, data)

    def public_bytes(
        self, encoding: serialization.Encoding, format: serialization.PublicFormat
    ) -> bytes:
        return self._key.public_bytes(encoding, format)

    def public_bytes_raw(self) -> bytes:
        return self._key.public_bytes_raw()

    def __eq__(self, other: object) -> bool:
        return other is self

    __hash__ = object.__hash__

    def __copy__(self) -> ed25519.Ed25519PublicKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ed25519.Ed25519PublicKey:
        return self


def _counted(key: SigningKey) -> tuple[_CountingEd25519Key, TokenVerifier]:
    """A verifier (default limits) whose issuer trusts `key` through a counting key."""
    counting = _CountingEd25519Key(key.private.public_key())
    keys = KeySet((VerificationKey(key.kid, frozenset({"EdDSA"}), counting),))
    return counting, TokenVerifier([issuer(keys=keys)])


def _token_of_length(key: SigningKey, length: int) -> str:
    """A valid token of exactly `length` characters, padded with a claim and a header
    member (base64url lengths skip one residue mod 4, so both are needed)."""
    for header_pad in range(4):
        short = sign(key, claims(), pad_header="h" * header_pad)
        start = max(0, (length - len(short)) * 3 // 4 - 20)
        for extra in range(start, start + 24):
            token = sign(key, claims(pad="p" * extra), pad_header="h" * header_pad)
            if len(token) == length:
                return token
    raise AssertionError(f"no token of length {length}")


def test_a_token_of_exactly_the_16_kib_default_is_verified(eddsa: SigningKey) -> None:
    counting, verifier = _counted(eddsa)
    assert isinstance(verifier.verify(_token_of_length(eddsa, DEFAULT_LIMIT), NOW), Token)
    assert counting.verifications == 1


def test_a_token_one_byte_over_the_default_is_refused_before_any_signature_check(
    eddsa: SigningKey,
) -> None:
    token = _token_of_length(eddsa, DEFAULT_LIMIT + 1)
    counting, verifier = _counted(eddsa)
    expect_error(verifier.verify(token, NOW), Code.TOO_LARGE)
    assert counting.verifications == 0
    # The very same token verifies under a larger limit: only its size refused it.
    larger = TokenVerifier([issuer(eddsa)], max_token_bytes=DEFAULT_LIMIT + 1)
    assert isinstance(larger.verify(token, NOW), Token)


def test_an_oversized_token_is_refused_before_it_is_parsed(eddsa: SigningKey) -> None:
    counting, verifier = _counted(eddsa)
    expect_error(verifier.verify("." * (DEFAULT_LIMIT + 1), NOW), Code.TOO_LARGE)  # not MALFORMED
    expect_error(verifier.verify("." * DEFAULT_LIMIT, NOW), Code.MALFORMED)
    assert counting.verifications == 0


# --- crit and b64 ---------------------------------------------------------------------

CRIT: list[tuple[str, dict[str, Any]]] = [
    ("crit-b64-unencoded-payload", {"crit": ["b64"], "b64": False}),
    (
        "crit-unknown-extension",
        {"crit": ["https://evil.example/ext"], "https://evil.example/ext": 1},
    ),
    ("crit-registered-member", {"crit": ["exp"]}),
    ("crit-empty-list", {"crit": []}),
    ("crit-not-a-list", {"crit": "b64"}),
]


@pytest.mark.parametrize("extra", [c[1] for c in CRIT], ids=[c[0] for c in CRIT])
def test_a_crit_header_is_refused_because_no_extension_is_understood(
    rs256: SigningKey, extra: dict[str, Any]
) -> None:
    # A signature that is valid over the header as sent: only `crit` is objectionable.
    token = hand_signed({"alg": "RS256", "kid": rs256.kid, **extra}, claims(), rsa_signer(rs256))
    expect_error(verify(issuer(rs256), token), Code.UNSUPPORTED_HEADER)


def test_a_detached_unencoded_payload_is_malformed(eddsa: SigningKey) -> None:
    token = sign(eddsa, claims(), b64=False)  # RFC 7797: PyJWT detaches the payload
    assert token.split(".")[1] == ""
    expect_error(verify(issuer(eddsa), token), Code.MALFORMED)


# --- Replayed refusals: one signature check, not one per request ------------------------


def test_a_replayed_expired_token_costs_one_signature_check(eddsa: SigningKey) -> None:
    counting, verifier = _counted(eddsa)
    token = sign(eddsa, claims(exp=NOW - 3600))
    for _ in range(5):
        expect_error(verifier.verify(token, NOW), Code.EXPIRED)
    assert counting.verifications == 1


def test_a_replayed_forged_token_costs_one_signature_check(eddsa: SigningKey) -> None:
    counting, verifier = _counted(eddsa)
    forger = ed25519_key(eddsa.kid)  # the issuer's kid, another private key
    token = sign(forger, claims())
    for _ in range(5):
        expect_error(verifier.verify(token, NOW), Code.BAD_SIGNATURE)
    assert counting.verifications == 1


def test_a_replayed_token_for_another_audience_costs_one_signature_check(
    eddsa: SigningKey,
) -> None:
    counting, verifier = _counted(eddsa)
    token = sign(eddsa, claims(aud="another-api"))
    for _ in range(3):
        expect_error(verifier.verify(token, NOW), Code.BAD_AUDIENCE)
    assert counting.verifications == 1


def test_a_token_not_valid_yet_is_checked_again_and_then_accepted(eddsa: SigningKey) -> None:
    counting, verifier = _counted(eddsa)
    token = sign(eddsa, claims(nbf=NOW + 600, exp=NOW + 1200))
    expect_error(verifier.verify(token, NOW), Code.NOT_YET_VALID)
    expect_error(verifier.verify(token, NOW), Code.NOT_YET_VALID)
    assert counting.verifications == 2  # time can make it valid: never kept
    assert isinstance(verifier.verify(token, NOW + 600), Token)


def test_without_a_cache_every_refusal_is_checked_again(eddsa: SigningKey) -> None:
    counting = _CountingEd25519Key(eddsa.private.public_key())
    keys = KeySet((VerificationKey(eddsa.kid, frozenset({"EdDSA"}), counting),))
    verifier = TokenVerifier([issuer(keys=keys)], cache_size=0)
    token = sign(eddsa, claims(exp=NOW - 3600))
    for _ in range(3):
        expect_error(verifier.verify(token, NOW), Code.EXPIRED)
    assert counting.verifications == 3


def test_kept_refusals_are_bounded(eddsa: SigningKey) -> None:
    counting = _CountingEd25519Key(eddsa.private.public_key())
    keys = KeySet((VerificationKey(eddsa.kid, frozenset({"EdDSA"}), counting),))
    verifier = TokenVerifier([issuer(keys=keys)], cache_size=2)
    tokens = [sign(eddsa, claims(exp=NOW - 3600, jti=str(n))) for n in range(3)]
    for token in tokens:
        expect_error(verifier.verify(token, NOW), Code.EXPIRED)
    assert counting.verifications == 3
    expect_error(verifier.verify(tokens[0], NOW), Code.EXPIRED)  # evicted: checked again
    assert counting.verifications == 4
    expect_error(verifier.verify(tokens[2], NOW), Code.EXPIRED)  # still kept
    assert counting.verifications == 4
