"""The rule index: from (tenant, host, method) to the few rules that could apply.

Platform rules and each tenant's rules live in separate scopes, so the cost of
a decision depends on the rules of *one* tenant, never on how many tenants the
bundle holds. Within a scope, rules are bucketed by the exact hosts of their
policy and the exact methods of their ``to`` entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from authz.policy.matchers import StringMatcher
from authz.policy.rules import Action, Rule

__all__ = ["Candidates", "RuleIndex"]

_ANY = "*"  # bucket of rules that match every method
_MEMO_LIMIT = 256  # per scope: a tenant sees a few hosts x methods x first segments
_UNLISTED = "/"  # never a path segment


class Candidates(NamedTuple):
    """The rules that may apply to one request, by action, each in bundle order."""

    deny: tuple[Rule, ...]
    audit: tuple[Rule, ...]
    allow: tuple[Rule, ...]

    @property
    def all(self) -> tuple[Rule, ...]:
        """Every candidate, in bundle order."""
        return tuple(sorted((*self.deny, *self.audit, *self.allow), key=_ordinal))


@dataclass(frozen=True, slots=True)
class _Methods:
    """Rules by exact method; ``_ANY`` holds rules without a method constraint."""

    table: dict[str, tuple[Rule, ...]]

    @classmethod
    def build(cls, rules: list[Rule]) -> _Methods:
        table: dict[str, list[Rule]] = {_ANY: []}
        for rule in rules:
            methods = rule.methods
            for method in (_ANY,) if methods is None else sorted(methods):
                table.setdefault(method, []).append(rule)
        return cls({method: tuple(found) for method, found in table.items()})

    def get(self, method: str) -> tuple[Rule, ...]:
        specific = self.table.get(method, ())
        anything = self.table[_ANY]
        if not specific:
            return anything
        if not anything:
            return specific
        return tuple(sorted((*specific, *anything), key=_ordinal))


@dataclass(frozen=True, slots=True)
class _Scope:
    """The rules of one scope (the platform, or one tenant)."""

    exact: dict[str, _Methods]
    wildcard: tuple[tuple[StringMatcher, _Methods], ...]
    anyhost: _Methods

    @classmethod
    def build(cls, rules: list[Rule]) -> _Scope:
        exact: dict[str, list[Rule]] = {}
        wildcard: dict[tuple[str, ...], list[Rule]] = {}
        anyhost: list[Rule] = []
        for rule in rules:
            if not rule.hosts:
                anyhost.append(rule)
                continue
            patterns = tuple(h for h in rule.hosts if "*" in h)
            for host in rule.hosts:
                if "*" not in host:
                    exact.setdefault(host, []).append(rule)
            if patterns:
                wildcard.setdefault(patterns, []).append(rule)
        return cls(
            {host: _Methods.build(found) for host, found in exact.items()},
            tuple((StringMatcher.build(p), _Methods.build(r)) for p, r in wildcard.items()),
            _Methods.build(anyhost),
        )

    def candidates(self, host: str, method: str) -> list[Rule]:
        found = list(self.anyhost.get(method))
        by_host = self.exact.get(host)
        if by_host is not None:
            found.extend(by_host.get(method))
        for matcher, methods in self.wildcard:
            if matcher.matches(host):
                found.extend(methods.get(method))
        return found


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """All compiled rules of a bundle, indexed for per-request lookup."""

    rules: tuple[Rule, ...]
    platform: _Scope
    tenants: dict[str, _Scope]
    segments: frozenset[str]  # every first path segment some rule is limited to
    # Candidate lists already worked out, per scope ("" = platform rules only).
    _memos: dict[str, dict[tuple[str, str, str | None], Candidates]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, rules: Iterable[Rule]) -> RuleIndex:
        """Index ``rules`` (already in bundle order)."""
        ordered = tuple(rules)
        by_tenant: dict[str, list[Rule]] = {}
        for rule in ordered:
            by_tenant.setdefault(rule.tenant, []).append(rule)
        platform = _Scope.build(by_tenant.pop("", []))
        segments = frozenset(s for rule in ordered for s in rule.segments or ())
        tenants = {tenant: _Scope.build(found) for tenant, found in by_tenant.items()}
        memos: dict[str, dict[tuple[str, str, str | None], Candidates]] = {"": {}}
        memos.update((tenant, {}) for tenant in tenants)
        return cls(ordered, platform, tenants, segments, memos)

    def candidates(
        self, tenant: str, platform_only: bool, host: str, method: str, path: str | None = None
    ) -> Candidates:
        """Rules that may apply, in bundle order: platform rules plus ``tenant``'s.

        With ``path`` (normalised), rules whose paths cannot start with its first
        segment are left out too.
        """
        scope = None if platform_only else self.tenants.get(tenant)
        segment = None
        if path is not None:
            segment = path[1:].partition("/")[0]
            if segment not in self.segments:
                segment = _UNLISTED  # only rules open to every path can match
        memo = self._memos["" if scope is None else tenant]
        key = (host, method, segment)
        found = memo.get(key)
        if found is None:
            found = self._candidates(scope, host, method, segment)
            if len(memo) >= _MEMO_LIMIT:
                # Hosts and paths come from clients: each scope's memo stays bounded.
                memo.clear()
            memo[key] = found
        return found

    def _candidates(
        self, scope: _Scope | None, host: str, method: str, segment: str | None
    ) -> Candidates:
        rules = self.platform.candidates(host, method)
        if scope is not None:
            rules.extend(scope.candidates(host, method))
        if segment is not None:
            rules = [r for r in rules if r.segments is None or segment in r.segments]
        ordered = sorted({r.ordinal: r for r in rules}.values(), key=_ordinal)
        return Candidates(
            tuple(r for r in ordered if r.action is Action.DENY),
            tuple(r for r in ordered if r.action is Action.AUDIT),
            tuple(r for r in ordered if r.action is Action.ALLOW),
        )


def _ordinal(rule: Rule) -> int:
    return rule.ordinal
