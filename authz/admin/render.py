"""Admin API rendering: served state (versions, lockdowns) as JSON, in the bundle's spelling."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authz.decision_cache import DecisionCache, analyse
from authz.identity.remote import SourceStatus
from authz.identity.tokens import Issuer
from authz.policy.bundle import Snapshot
from authz.policy.lockdown import Lockdown
from authz.policy.matchers import StringMatcher
from authz.store import RuntimeLockdown, Version

__all__ = ["cache_json", "issuer_json", "lockdown_json", "runtime_json", "version_json"]


def version_json(version: Version) -> dict[str, Any]:
    return {
        "version": version.version,
        "loaded_at": _time(version.loaded_at),
        "files": list(version.files),
        "applied": version.applied,
    }


def issuer_json(issuer: Issuer, fetched: SourceStatus | None) -> dict[str, Any]:
    """An issuer and its key count; for remote keys, how fetching them goes."""
    if fetched is None:
        return {"name": issuer.name, "issuer": issuer.issuer, "keys": len(issuer.keys.keys)}
    success = fetched.last_success
    fetched_at = None if success is None else _time(datetime.fromtimestamp(success, UTC))
    return {
        "name": issuer.name,
        "issuer": issuer.issuer,
        "keys": fetched.keys,
        "remote": {
            "url": fetched.url,
            "ready": fetched.ready,
            "refreshes": fetched.refreshes,
            "failures": fetched.failures,
            "last_success": fetched_at,
            "last_error": fetched.last_error,
        },
    }


def cache_json(cache: DecisionCache, snapshot: Snapshot) -> dict[str, Any]:
    """The decision cache's size and counts, and why ``snapshot`` is not cached ('' when
    it is)."""
    return {
        "size": cache.size,
        "ttl_seconds": cache.ttl,
        "entries": cache.entries,
        "hits": cache.hits,
        "misses": cache.misses,
        "bypasses": cache.bypasses,
        "evictions": cache.evictions,
        "uncacheable": analyse(snapshot).uncacheable,
    }


def lockdown_json(lockdown: Lockdown) -> dict[str, Any]:
    """A lockdown in the bundle's spelling, so it can be pasted into a Lockdown document."""
    return {
        "name": lockdown.name,
        "tenant": lockdown.tenant or None,
        "reason": lockdown.reason,
        "exemptPaths": _patterns(lockdown.exempt_paths),
        "exemptPrincipals": _patterns(lockdown.exempt_principals),
        "expires": _time(lockdown.expires) if lockdown.expires is not None else None,
    }


def runtime_json(entry: RuntimeLockdown) -> dict[str, Any]:
    return {**lockdown_json(entry.lockdown), "actor": entry.actor, "since": _time(entry.since)}


_ONE_SEGMENT, _REST = "/[^/]+", "(?:/.*)?"  # what compile_path_template makes of {*}, {**}


def _patterns(matcher: StringMatcher | None) -> list[str]:
    """The patterns ``matcher`` was built from (principals in Istio form)."""
    if matcher is None:
        return []
    found = sorted(matcher.exact)
    found += [prefix + "*" for prefix in matcher.prefixes]
    found += ["*" + suffix for suffix in matcher.suffixes]
    found += ["*"] if matcher.present else []
    return found + [_template(compiled.pattern) for compiled in matcher.templates]


def _template(regex: str) -> str:
    """The path template a ``compile_path_template`` regex came from."""
    out: list[str] = []
    body, index = regex.removesuffix(r"\Z"), 0
    while index < len(body):
        if body.startswith(_REST, index):
            out.append("/{**}")
            index += len(_REST)
        elif body.startswith(_ONE_SEGMENT, index):
            out.append("/{*}")
            index += len(_ONE_SEGMENT)
        else:  # a literal, escaped by re.escape when special
            step = 2 if body[index] == "\\" else 1
            out.append(body[index + step - 1])
            index += step
    return "".join(out)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
