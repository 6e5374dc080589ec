"""Claims: what a verified JWT payload means for policy.

Pure functions over an already signature-checked payload: the validity window
(`exp`, `nbf`, `iat` against a caller-supplied `now`, never the wall clock), the
audiences, and the roles and tenant read through configured dotted paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ValidityWindow",
    "audiences_of",
    "claim_at",
    "numeric_date",
    "roles_from",
    "tenant_from",
    "validity_window",
]


@dataclass(frozen=True, slots=True)
class ValidityWindow:
    """The times between which a token is accepted, leeway already applied."""

    not_before: float  # max(nbf, iat) - leeway, or -inf
    expires_at: float  # exp, without leeway
    leeway: float

    def expired(self, now: float) -> bool:
        """Past `exp` by more than the leeway."""
        return now > self.expires_at + self.leeway

    def premature(self, now: float) -> bool:
        """Before `nbf`, or before `iat`, by more than the leeway."""
        return now < self.not_before


def numeric_date(value: object) -> float | None:
    """A JSON NumericDate as a finite float, or None (bools, strings, NaN, inf refused)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def validity_window(claims: Mapping[str, Any], leeway: float) -> ValidityWindow | str:
    """The token's window, or a reason it has none. `exp` is required: a token that
    never expires would stay valid forever once leaked."""
    exp = numeric_date(claims.get("exp"))
    if exp is None:
        return "exp missing or not a number"
    not_before = -math.inf
    for name in ("nbf", "iat"):
        if name in claims:
            value = numeric_date(claims[name])
            if value is None:
                return f"{name} is not a number"
            not_before = max(not_before, value - leeway)
    return ValidityWindow(not_before=not_before, expires_at=exp, leeway=leeway)


def audiences_of(claims: Mapping[str, Any]) -> tuple[str, ...] | None:
    """`aud` as a tuple (a string or a list of strings, RFC 7519 §4.1.3), else None."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(item, str) for item in aud):
        return tuple(aud)
    return None


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` ("realm_access.roles"), or None.

    A top-level claim whose name is the whole path wins, so namespaced claims
    such as "https://example.com/roles" (which contain dots) stay reachable.
    """
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def roles_from(claims: Mapping[str, Any], path: str | None) -> tuple[str, ...]:
    """Roles: a list (non-strings ignored) or a space-separated string; else none."""
    if path is None:
        return ()
    value = claim_at(claims, path)
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def tenant_from(claims: Mapping[str, Any], path: str | None) -> str:
    """The subject tenant: a string claim, else empty."""
    if path is None:
        return ""
    value = claim_at(claims, path)
    return value if isinstance(value, str) else ""
