"""Claims at their edges: near-miss issuers and audiences, and the exact leeway boundary.

An `iss` or `aud` that differs from a configured one in any way (case, a slash, a space,
a suffix), or is another trusted issuer's audience, is refused. `exp`, `nbf` and `iat` are
accepted up to the leeway boundary and refused one representable instant beyond it, on
first sight and when the token is already in the verified-token cache. (A token naming
another trusted issuer but signed with this one's key: `test_tokens.py`.)
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from authz.identity import Token, TokenErrorCode, TokenVerifier
from tests.identity.signing import (
    AUD,
    ISS,
    NOW,
    SigningKey,
    claims,
    expect_error,
    issuer,
    sign,
    verify,
)

Code = TokenErrorCode


# --- Another issuer, another audience: near misses are misses

OTHER = "https://other-idp.example.com"

NEAR_MISSES: list[tuple[str, dict[str, Any], TokenErrorCode]] = [
    ("iss-trailing-slash", {"iss": ISS + "/"}, Code.UNKNOWN_ISSUER),
    ("iss-upper-case-host", {"iss": ISS.upper()}, Code.UNKNOWN_ISSUER),
    ("iss-http-scheme", {"iss": ISS.replace("https", "http")}, Code.UNKNOWN_ISSUER),
    ("iss-with-space", {"iss": f" {ISS}"}, Code.UNKNOWN_ISSUER),
    ("aud-of-the-other-issuer", {"aud": "other-api"}, Code.BAD_AUDIENCE),
    ("aud-upper-case", {"aud": AUD.upper()}, Code.BAD_AUDIENCE),
    ("aud-with-space", {"aud": f"{AUD} "}, Code.BAD_AUDIENCE),
    ("aud-with-suffix", {"aud": f"{AUD}-admin"}, Code.BAD_AUDIENCE),
    ("aud-nested-list", {"aud": [[AUD]]}, Code.BAD_AUDIENCE),
    ("aud-object", {"aud": {AUD: True}}, Code.BAD_AUDIENCE),
]


@pytest.mark.parametrize(
    ("overrides", "code"), [c[1:] for c in NEAR_MISSES], ids=[c[0] for c in NEAR_MISSES]
)
def test_a_token_for_another_issuer_or_audience_is_refused(
    rs256: SigningKey, es256: SigningKey, overrides: dict[str, Any], code: TokenErrorCode
) -> None:
    other = issuer(es256, name="other-idp", issuer=OTHER, audiences=("other-api",))
    token = sign(rs256, claims(**overrides))
    expect_error(verify([issuer(rs256), other], token), code)


# --- exp, nbf, iat: the exact leeway boundary, on both sides


def _later(instant: float) -> float:
    return math.nextafter(instant, math.inf)


def _earlier(instant: float) -> float:
    return math.nextafter(instant, -math.inf)


# (claims, leeway, last accepted instant, first refused instant, code)
BOUNDARIES: list[tuple[str, dict[str, Any], int, float, float, TokenErrorCode]] = [
    ("exp", {"exp": NOW + 300}, 30, NOW + 330, _later(NOW + 330), Code.EXPIRED),
    ("exp-no-leeway", {"exp": NOW + 300}, 0, NOW + 300, _later(NOW + 300), Code.EXPIRED),
    ("exp-fractional", {"exp": NOW + 300.25}, 30, NOW + 330.25, _later(NOW + 330.25), Code.EXPIRED),
    ("nbf", {"nbf": NOW + 100}, 30, NOW + 70, _earlier(NOW + 70), Code.NOT_YET_VALID),
    ("nbf-no-leeway", {"nbf": NOW + 100}, 0, NOW + 100, _earlier(NOW + 100), Code.NOT_YET_VALID),
    ("iat", {"iat": NOW + 100}, 30, NOW + 70, _earlier(NOW + 70), Code.NOT_YET_VALID),
    ("iat-no-leeway", {"iat": NOW + 100}, 0, NOW + 100, _earlier(NOW + 100), Code.NOT_YET_VALID),
]


@pytest.mark.parametrize("cached", [False, True], ids=["first-sight", "after-a-cache-fill"])
@pytest.mark.parametrize(
    ("overrides", "leeway", "last_ok", "first_refused", "code"),
    [c[1:] for c in BOUNDARIES],
    ids=[c[0] for c in BOUNDARIES],
)
def test_times_are_accepted_up_to_the_leeway_boundary_and_not_one_instant_beyond(
    rs256: SigningKey,
    overrides: dict[str, Any],
    leeway: int,
    last_ok: float,
    first_refused: float,
    code: TokenErrorCode,
    cached: bool,
) -> None:
    assert first_refused != last_ok  # a distinct float, the next one representable
    token = sign(rs256, claims(**overrides))

    def verifier() -> TokenVerifier:
        return TokenVerifier([issuer(rs256, leeway_seconds=leeway)])

    if cached:
        warm = verifier()
        assert isinstance(warm.verify(token, NOW + 200), Token)  # inside the window
        first, second = warm, warm
    else:
        first, second = verifier(), verifier()
    assert isinstance(first.verify(token, last_ok), Token)
    expect_error(second.verify(token, first_refused), code)
