"""The PolicyTest model: test documents, cases, their results and the run's report.

Also the shared facts of a run: the fixed default time, the expectable fields,
the algorithms the runner can sign with, and where a case's token goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authz.identity.tokens import Issuer

#: The evaluation time of a PolicyTest without ``spec.now``: fixed, never the wall clock.
DEFAULT_NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXPECT_FIELDS = ("allowed", "status", "reason", "rule", "tenant", "would_match", "audit")
# Cheap to generate first; RSA only when an issuer accepts nothing else.
SIGNING_ALGORITHMS = ("ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256")


@dataclass(frozen=True, slots=True)
class CaseToken:
    """A case's token: claims (completed when the case runs) and the Issuer that signs it."""

    claims: dict[str, Any]
    issuer: Issuer


@dataclass(frozen=True, slots=True)
class Case:
    """One test case, with where it is written."""

    name: str
    where: str  # file:line:column
    request: Any  # an envoy.service.auth.v3.CheckRequest
    token: CaseToken | None
    expect: dict[str, Any]  # only the fields the author wrote


@dataclass(frozen=True, slots=True)
class PolicyTest:
    """One ``kind: PolicyTest`` document."""

    name: str
    file: str
    now: datetime
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One expected field that the decision does not have."""

    field: str
    expected: Any
    actual: Any


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What one case decided, and how it differs from what was expected."""

    test: PolicyTest
    case: Case
    actual: dict[str, Any]  # the decision as data (spec §8), without id and version
    detail: str  # the decision's log detail (why a token or path was refused)
    mismatches: tuple[Mismatch, ...]

    @property
    def passed(self) -> bool:
        """Every expected field matched."""
        return not self.mismatches


@dataclass(frozen=True, slots=True)
class Report:
    """The results of a run and the rule coverage they reach."""

    policy_version: str
    results: tuple[CaseResult, ...]
    rules: tuple[str, ...]  # every rule id of the bundle, in bundle order
    covered: frozenset[str]
    positions: Mapping[str, str] = field(default_factory=dict)  # rule id -> file:line:col

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        """The cases that did not pass."""
        return tuple(result for result in self.results if not result.passed)

    @property
    def uncovered(self) -> tuple[str, ...]:
        """Rules that no case reached, in bundle order."""
        return tuple(rule for rule in self.rules if rule not in self.covered)

    @property
    def coverage(self) -> float:
        """Covered rules as a percentage (100 for a bundle without rules)."""
        if not self.rules:
            return 100.0
        return 100.0 * (len(self.rules) - len(self.uncovered)) / len(self.rules)


def token_header(issuer: Issuer) -> tuple[str, str]:
    """The header (name, value prefix) where ``issuer`` looks for a case's token."""
    source = issuer.from_headers[0] if issuer.from_headers else None
    return (source.name, source.prefix) if source else ("authorization", "Bearer ")
