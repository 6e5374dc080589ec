"""kind: Lockdown — an emergency deny declared in the bundle (spec §3b).

A lockdown in the bundle survives restarts and reaches replicas that start
later. Requests in its scope are denied ``403 lockdown`` before any token or
rule is looked at, except the exempt paths (health probes) and workloads
(break-glass) it names, which continue to the normal decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from authz.errors import PolicyError
from authz.identity.peers import istio_form
from authz.policy.matchers import StringMatcher, path_template_problem, pattern_problem
from authz.policy.reader import Reader
from authz.policy.source import Document, Path

__all__ = ["Lockdown", "compile_lockdown"]

_FIELDS = ("tenant", "reason", "exemptPaths", "exemptPrincipals", "expires")


@dataclass(frozen=True, slots=True)
class Lockdown:
    """One declared lockdown; ``tenant`` '' covers every request."""

    name: str
    tenant: str
    reason: str
    exempt_paths: StringMatcher | None
    exempt_principals: StringMatcher | None
    expires: datetime | None

    def covers(self, tenant: str, path: str, principal: str, now: datetime) -> bool:
        """Whether a request of ``tenant`` to ``path`` from ``principal`` is locked down."""
        if self.expires is not None and now >= self.expires:
            return False
        if self.tenant and self.tenant != tenant:
            return False
        if self.exempt_paths is not None and path and self.exempt_paths.matches(path):
            return False
        return not (
            self.exempt_principals is not None
            and principal
            and self.exempt_principals.matches(principal)
        )


def compile_lockdown(document: Document, errors: list[PolicyError], name: str) -> Lockdown | None:
    """Compile one Lockdown document (None if it has errors)."""
    before = len(errors)
    reader = Reader(document, errors)
    spec = reader.mapping(("spec",), _FIELDS, ("reason",)) or {}
    tenant = reader.string(("spec", "tenant")) if "tenant" in spec else ""
    reason = reader.string(("spec", "reason")) if "reason" in spec else ""
    paths = _patterns(reader, ("spec", "exemptPaths"), paths=True) if "exemptPaths" in spec else ()
    principals: tuple[str, ...] = ()
    if "exemptPrincipals" in spec:
        principals = _patterns(reader, ("spec", "exemptPrincipals"), paths=False)
    expires = _expires(reader, ("spec", "expires")) if "expires" in spec else None
    if len(errors) > before:
        return None
    return Lockdown(
        name=name,
        tenant=tenant or "",
        reason=reason or "",
        exempt_paths=StringMatcher.build(paths, templates=True) if paths else None,
        exempt_principals=StringMatcher.build(principals, istio_form) if principals else None,
        expires=expires,
    )


def _patterns(reader: Reader, path: Path, *, paths: bool) -> tuple[str, ...]:
    values = reader.strings(path) or ()
    for index, value in enumerate(values):
        if paths and ("{" in value or "}" in value):
            problem = path_template_problem(value)
        else:
            problem = pattern_problem(value)
        if problem:
            reader.error((*path, index), problem)
    return values


def _expires(reader: Reader, path: Path) -> datetime | None:
    value = reader.value(path)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            reader.error(path, "must be an RFC 3339 time, e.g. 2026-11-28T00:00:00Z")
            return None
    if not isinstance(value, datetime):
        reader.error(path, "must be an RFC 3339 time, e.g. 2026-11-28T00:00:00Z")
        return None
    if value.tzinfo is None:
        # A time without a zone means a different instant on every server.
        reader.error(path, "needs a time zone, e.g. 2026-11-28T00:00:00Z")
        return None
    return value
