"""Comparing rules by what their YAML means, and judging which changes widen access."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from authz.identity.peers import istio_form
from authz.policy.diff.model import RuleChange
from authz.policy.matchers import strip_port
from authz.policy.source import Document

# A `from`/`to` entry: (field, sorted values, or the `authenticated` boolean), by field name.
Entry = tuple[tuple[str, tuple[str, ...] | bool], ...]
_NORMALISE = {
    "principals": istio_form,
    "notPrincipals": istio_form,
    "hosts": strip_port,
    "notHosts": strip_port,
}
_STRING = re.compile(r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*\"""")


@dataclass(frozen=True, slots=True)
class _Rule:
    """A rule as its YAML means it (the compared form)."""

    id: str
    tenant: str
    where: str
    hosts: frozenset[str]  # the policy's hosts; empty: every host
    action: str
    dry_run: bool
    sources: frozenset[Entry]
    operations: frozenset[Entry]
    when: str | None  # whitespace outside string literals collapsed

    @property
    def enforced_allow(self) -> bool:
        return self.action == "ALLOW" and not self.dry_run

    @property
    def enforced_deny(self) -> bool:
        return self.action == "DENY" and not self.dry_run


def read_rules(documents: Iterable[Document]) -> dict[str, _Rule]:
    """The rules of a bundle that loaded (so every document is well-formed)."""
    found: dict[str, _Rule] = {}
    for document in _of_kind(documents, "Policy"):
        meta, spec = document.value["metadata"], document.value["spec"]
        hosts = frozenset(strip_port(host) for host in spec.get("hosts", ()))
        for index, rule in enumerate(spec["rules"]):
            line, column = document.positions[("spec", "rules", index)]
            rule_id = f"{meta['name']}/{rule['name']}"
            found[rule_id] = _Rule(
                rule_id,
                meta.get("tenant", ""),
                f"{document.file}:{line}:{column}",
                hosts,
                rule.get("action", "ALLOW"),
                rule.get("dryRun", False),
                frozenset(_entry(entry) for entry in rule.get("from", ())),
                frozenset(_entry(entry) for entry in rule.get("to", ())),
                _cel(rule["when"]) if "when" in rule else None,
            )
    return found


def _of_kind(documents: Iterable[Document], kind: str) -> list[Document]:
    return [d for d in documents if isinstance(d.value, dict) and d.value.get("kind") == kind]


def _entry(raw: Mapping[str, Any]) -> Entry:
    items: list[tuple[str, tuple[str, ...] | bool]] = []
    for name, value in sorted(raw.items()):
        if isinstance(value, bool):
            items.append((name, value))
        else:
            normalise = _NORMALISE.get(name, str)
            items.append((name, tuple(sorted({normalise(v) if v != "*" else v for v in value}))))
    return tuple(items)


def _cel(source: str) -> str:
    """CEL with whitespace outside string literals collapsed (it means nothing there)."""
    parts, last = [], 0
    for match in _STRING.finditer(source):
        parts.append(re.sub(r"\s+", " ", source[last : match.start()]))
        parts.append(match.group(0))
        last = match.end()
    parts.append(re.sub(r"\s+", " ", source[last:]))
    return "".join(parts).strip()


def rule_change(old: _Rule | None, new: _Rule | None) -> RuleChange | None:
    if old is None and new is not None:
        widens = ("ALLOW added",) if new.enforced_allow else ()
        return RuleChange("+", new.id, new.tenant, _action(new), new.where, (), widens)
    if new is None and old is not None:
        widens = ("DENY removed",) if old.enforced_deny else ()
        return RuleChange("-", old.id, old.tenant, _action(old), old.where, (), widens)
    assert old is not None and new is not None
    details = _details(old, new)
    if not details:
        return None
    return RuleChange("~", new.id, new.tenant, _action(new), new.where, details, _widens(old, new))


def _action(rule: _Rule) -> str:
    return rule.action + (" (dryRun)" if rule.dry_run else "")


def _widens(old: _Rule, new: _Rule) -> tuple[str, ...]:
    reasons: list[str] = []
    if new.enforced_allow and not old.enforced_allow:
        reasons.append(f"now an enforced ALLOW (was {_action(old)})")
    elif new.enforced_allow:
        reasons += [f"ALLOW loosened: {why}" for why in _loosened(new, old, "ALLOW")]
    if old.enforced_deny and not new.enforced_deny:
        reasons.append(f"DENY no longer enforced (now {_action(new)})")
    elif old.enforced_deny:
        reasons += [f"DENY narrowed: {why}" for why in _loosened(old, new, "DENY")]
    return tuple(reasons)


def _loosened(wider: _Rule, narrower: _Rule, action: str) -> list[str]:
    """How ``wider`` may match requests that ``narrower`` does not (empty: it cannot)."""
    reasons = []
    if wider.tenant != narrower.tenant and narrower.tenant:
        reasons.append(f"tenant {narrower.tenant} -> {wider.tenant or 'platform'}")
    if narrower.hosts and not (
        wider.hosts and all(_covered(h, narrower.hosts) for h in wider.hosts)
    ):
        reasons.append("policy hosts")
    for part, a, b in (
        ("from", wider.sources, narrower.sources),
        ("to", wider.operations, narrower.operations),
    ):
        if b and not (a and all(any(_entry_within(x, y) for y in b) for x in a)):
            reasons.append(part)
    if narrower.when is not None and wider.when != narrower.when:
        if wider.when is not None:
            reasons.append("when changed")
        else:  # the ALLOW lost its `when`, or the DENY gained one
            reasons.append("when removed" if action == "ALLOW" else "when added")
    return reasons


def _entry_within(a: Entry, b: Entry) -> bool:
    """Every request that entry ``a`` matches, entry ``b`` matches (conservatively)."""
    mine = dict(a)
    for name, theirs in b:
        value = mine.get(name)
        if value is None:
            return False  # ``a`` lacks a constraint that ``b`` has
        if isinstance(theirs, bool) or isinstance(value, bool):
            if value != theirs:
                return False
        elif name.startswith("not"):
            if not all(_covered(pattern, value) for pattern in theirs):
                return False  # ``a`` excludes less
        elif not all(_covered(pattern, theirs) for pattern in value):
            return False  # ``a`` admits more
    return True


def _covered(pattern: str, by: Iterable[str]) -> bool:
    """Every value ``pattern`` matches, some pattern of ``by`` matches."""
    return any(_pattern_within(pattern, other) for other in by)


def _pattern_within(pattern: str, other: str) -> bool:
    if pattern == other or (other == "*" and pattern != ""):
        return True
    if "{" in pattern or "{" in other or pattern == "*":
        return False  # templates: only equal ones are known to agree
    if other.endswith("*"):
        prefix = other[:-1]
        return not pattern.startswith("*") and pattern.startswith(prefix)
    if other.startswith("*"):
        suffix = other[1:]
        return not pattern.endswith("*") and pattern.endswith(suffix)
    return False


def _details(old: _Rule, new: _Rule) -> tuple[str, ...]:
    """What changed, field by field, in the words of the YAML."""
    found: list[str] = []
    for name, a, b in (
        ("tenant", old.tenant or "(platform)", new.tenant or "(platform)"),
        ("hosts", _list(old.hosts) or "(every host)", _list(new.hosts) or "(every host)"),
        ("action", old.action, new.action),
        ("dryRun", str(old.dry_run).lower(), str(new.dry_run).lower()),
        ("when", old.when or "(none)", new.when or "(none)"),
    ):
        if a != b:
            found.append(f"{name}: {a} -> {b}")
    for part, before, after in (
        ("from", old.sources, new.sources),
        ("to", old.operations, new.operations),
    ):
        found += [f"{part}: - {_show(entry)}" for entry in sorted(before - after)]
        found += [f"{part}: + {_show(entry)}" for entry in sorted(after - before)]
    return tuple(found)


def _list(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


def _show(entry: Entry) -> str:
    fields = [
        f"{name}: {str(value).lower()}" if isinstance(value, bool) else f"{name}: [{_list(value)}]"
        for name, value in entry
    ]
    return "{" + ", ".join(fields) + "}"
