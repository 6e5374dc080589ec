"""extract_token and header_sources: where a request's token is found."""

from __future__ import annotations

import pytest

from authz.identity import HeaderSource, extract_token, header_sources
from tests.identity.signing import BEARER, issuer

API_KEY = HeaderSource(name="x-api-token", prefix="")
TOKEN = HeaderSource(name="authorization", prefix="Token ")

EXTRACT: list[tuple[str, dict[str, str], tuple[HeaderSource, ...], str | None]] = [
    ("bearer", {"authorization": "Bearer abc"}, (BEARER,), "abc"),
    ("scheme-lower-case", {"authorization": "bearer abc"}, (BEARER,), "abc"),
    ("scheme-upper-case", {"authorization": "BEARER abc"}, (BEARER,), "abc"),
    ("extra-whitespace", {"authorization": "  Bearer   abc  "}, (BEARER,), "abc"),
    ("missing-header", {"cookie": "a=b"}, (BEARER,), None),
    ("wrong-scheme", {"authorization": "Basic dXNlcjpwYXNz"}, (BEARER,), None),
    ("scheme-without-space", {"authorization": "Bearerabc"}, (BEARER,), None),
    ("empty-remainder", {"authorization": "Bearer   "}, (BEARER,), None),
    ("custom-header-empty-prefix", {"x-api-token": "abc"}, (API_KEY,), "abc"),
    ("custom-header-empty-value", {"x-api-token": ""}, (API_KEY,), None),
    (
        "first-source-wins",
        {"authorization": "Bearer one", "x-api-token": "two"},
        (API_KEY, BEARER),
        "two",
    ),
    (
        "wrong-prefix-skipped",
        {"authorization": "Basic x", "x-api-token": "two"},
        (BEARER, API_KEY),
        "two",
    ),
    ("same-header-other-prefix", {"authorization": "Token t"}, (BEARER, TOKEN), "t"),
    ("no-sources", {"authorization": "Bearer abc"}, (), None),
]


@pytest.mark.parametrize(
    ("headers", "sources", "token"), [c[1:] for c in EXTRACT], ids=[c[0] for c in EXTRACT]
)
def test_extract_token(
    headers: dict[str, str], sources: tuple[HeaderSource, ...], token: str | None
) -> None:
    assert extract_token(headers, sources) == token


def test_header_sources_union_in_order_without_duplicates() -> None:
    first = issuer(from_headers=(BEARER, API_KEY))
    second = issuer(from_headers=(TOKEN, BEARER, API_KEY), name="b", issuer="https://b")
    assert header_sources([first, second]) == (BEARER, API_KEY, TOKEN)
    assert header_sources([]) == ()
