"""The JWS compact serialization, read before any signature is checked.

`split_compact` reads a token's header and payload only so the verifier can pick
an issuer, an algorithm from its allow-list and candidate keys. Nothing read here
is trusted: the claims that reach policy come from the payload PyJWT returns after
the signature verified. The parsing is deliberately strict (exactly three
segments, unpadded base64url, JSON objects) so odd encodings are refused early
instead of being interpreted differently by two parsers.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["CompactParts", "MalformedToken", "split_compact"]

_BASE64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class MalformedToken(ValueError):
    """The token is not a well-formed JWS compact serialization."""


@dataclass(frozen=True, slots=True)
class CompactParts:
    """The unverified header and payload of a compact JWS."""

    header: dict[str, Any]
    payload: dict[str, Any]


def split_compact(token: str) -> CompactParts:
    """Decode header and payload of `token`; raises `MalformedToken`."""
    if not token.isascii():
        raise MalformedToken("non-ASCII characters")
    segments = token.split(".")
    if len(segments) != 3:
        raise MalformedToken(f"{len(segments)} segments, expected 3")
    header = _json_object(segments[0], "header")
    payload = _json_object(segments[1], "payload")
    if not segments[2]:
        raise MalformedToken("empty signature")
    return CompactParts(header=header, payload=payload)


def _json_object(segment: str, name: str) -> dict[str, Any]:
    raw = segment.encode("ascii")
    if not raw or not _BASE64URL.issuperset(raw) or len(raw) % 4 == 1:
        raise MalformedToken(f"{name} is not unpadded base64url")
    try:
        value = json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise MalformedToken(f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken(f"{name} is not a JSON object")
    return value
