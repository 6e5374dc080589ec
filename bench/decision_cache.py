"""A decision cache, prototyped to measure what it could gain; not part of the server.

``python -m bench.decision_cache serve ...`` is ``authz serve ...`` with ``decide``
memoised. The key is what the example bundle's decisions depend on for an HTTP
request: the policy version, the raw token, method, host, normalised path and
query, the source principal, and the request headers that the bundle reads by
name (the tenancy header and those a condition tests). An entry is kept for at
most one second, never past the token's expiry, and never for a decision made
under another policy version (the version is part of the key); the cache is
bounded and cleared when full. Decisions that read the clock (``now``,
``request.time``) cannot be cached at all; the example bundle has none on the
measured path.

Its purpose is an upper bound: :mod:`bench.load_variants` replays one request, so
after the first call every Check is a hit. If even that gains little Check
throughput, a real cache (correct key extraction per rule, invalidation, its
own tests) is not worth its risk. README, Performance, has the figures.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import authz.server
from authz.cli import main
from authz.decision import Decision
from authz.engine import decide as _decide
from authz.identity.tokens import Token
from authz.policy.bundle import Snapshot
from authz.request import RequestAttributes

__all__ = ["cached_decide"]

_LIMIT = 65_536
_TTL_SECONDS = 1.0
_HEADERS = ("x-tenant-id", "x-change-ticket")  # what the example bundle reads by name
_cache: dict[tuple[Any, ...], tuple[Decision, float]] = {}


def cached_decide(snapshot: Snapshot, request: RequestAttributes, now: datetime) -> Decision:
    """``decide``, from the cache when an entry for the same inputs is still fresh."""
    http = request.http
    if http is None:
        return _decide(snapshot, request, now)
    headers = http.headers
    key = (
        snapshot.version,
        headers.get("authorization"),
        http.method,
        http.host,
        http.path,
        http.query,
        request.source.principal,
        *(headers.get(name) for name in _HEADERS),
    )
    moment = now.timestamp()
    hit = _cache.get(key)
    if hit is not None and moment < hit[1]:
        return hit[0]
    decision = _decide(snapshot, request, now)
    expires = moment + _TTL_SECONDS
    verified = snapshot.tokens.verify(key[1].removeprefix("Bearer "), moment) if key[1] else None
    if isinstance(verified, Token):  # a hit after expiry would skip the 401
        expires = min(expires, verified.expires_at)
    if len(_cache) >= _LIMIT:
        _cache.clear()
    _cache[key] = (decision, expires)
    return decision


if __name__ == "__main__":
    vars(authz.server)["decide"] = cached_decide  # what AuthorizationService calls
    sys.exit(main(sys.argv[1:]))
