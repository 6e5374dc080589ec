"""Bundle diffs: which rules changed between two bundles, and which changes widen access.

Rules are compared by what their YAML *means*, not by its text: entries of
``from``/``to`` and values of a field are sets, principals lose ``spiffe://``,
hosts their port, CEL its insignificant whitespace. A change **widens** access
when the new bundle may allow a request the old one refused:

- an enforced ALLOW is added, or an ALLOW becomes enforced (``dryRun`` off,
  action changed to ALLOW), or is loosened: its policy's tenant or hosts, a
  ``from``/``to`` part with fewer constraints, more values in a positive field,
  fewer in a ``not…`` field, ``when`` removed or changed;
- an enforced DENY is removed, turned into a dry run or another action, or
  narrowed (the mirror image of the above, ``when`` added or changed);
- trust or emergency documents change: an Issuer added or changed, the Tenancy
  changed, a Lockdown removed or changed, a revoked identity removed.

The comparison is syntactic and conservative: a change that cannot be shown
to narrow (``/a/*`` -> ``/a/{*}``, any edit of a ``when``) is reported as
widening, for a person to judge. Nothing is ever silently called safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from authz.errors import PolicyError
from authz.identity.peers import istio_form
from authz.policy.bundle import Snapshot
from authz.policy.matchers import strip_port
from authz.policy.source import Document, parse_documents

__all__ = ["BundleDiff", "DocumentChange", "RuleChange", "bundle_documents", "diff_bundles"]

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


@dataclass(frozen=True, slots=True)
class RuleChange:
    """A rule added (``+``), removed (``-``) or changed (``~``)."""

    change: str
    rule: str
    tenant: str
    action: str
    where: str
    details: tuple[str, ...]
    widens: tuple[str, ...]  # why it widens access; empty when it does not


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """Another document (Issuer, Tenancy, Lockdown, Revocations, PolicyTest) that changed."""

    change: str
    kind: str
    name: str
    widens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BundleDiff:
    """Everything that changed between two bundles, rules grouped by tenant."""

    old_version: str
    new_version: str
    rules: tuple[RuleChange, ...]  # platform rules first, then by tenant, then by rule id
    documents: tuple[DocumentChange, ...]

    @property
    def changed(self) -> bool:
        """Any rule or document changed in meaning."""
        return bool(self.rules or self.documents)

    @property
    def widens(self) -> bool:
        """Some change may allow what the old bundle refused."""
        return any(c.widens for c in self.rules) or any(d.widens for d in self.documents)

    def as_json(self) -> dict[str, Any]:
        """The diff as data."""
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "widens": self.widens,
            "rules": [
                {
                    "change": _CHANGE_WORDS[c.change],
                    "rule": c.rule,
                    "tenant": c.tenant,
                    "action": c.action,
                    "where": c.where,
                    "details": list(c.details),
                    "widens": list(c.widens),
                }
                for c in self.rules
            ],
            "documents": [
                {
                    "change": _CHANGE_WORDS[c.change],
                    "kind": c.kind,
                    "name": c.name,
                    "widens": list(c.widens),
                }
                for c in self.documents
            ],
        }

    def as_text(self) -> str:
        """The diff for a reviewer: one line per change, details indented below."""
        if not self.changed:
            return "no changes in meaning"
        lines: list[str] = []
        tenant: str | None = None
        for c in self.rules:
            if c.tenant != tenant:
                tenant = c.tenant
                lines.append(f"tenant {tenant}:" if tenant else "platform:")
            flag = f"  WIDENS: {'; '.join(c.widens)}" if c.widens else ""
            lines.append(f"  {c.change} {c.action:<5} {c.rule}  ({c.where}){flag}")
            lines += [f"      {detail}" for detail in c.details]
        if self.documents:
            lines.append("other documents:")
        for d in self.documents:
            flag = f"  WIDENS: {'; '.join(d.widens)}" if d.widens else ""
            lines.append(f"  {d.change} {d.kind} {d.name}{flag}")
        widening = sum(1 for c in self.rules if c.widens)
        widening += sum(1 for d in self.documents if d.widens)
        lines.append(
            f"{len(self.rules)} rule(s) and {len(self.documents)} other document(s) changed; "
            f"{widening} widen access"
        )
        return "\n".join(lines)


_CHANGE_WORDS = {"+": "added", "-": "removed", "~": "changed"}


def bundle_documents(root: FsPath, snapshot: Snapshot) -> tuple[list[Document], list[PolicyError]]:
    """Every YAML document of the files ``snapshot`` was loaded from."""
    documents: list[Document] = []
    errors: list[PolicyError] = []
    for relative in snapshot.files:
        if not relative.endswith((".yaml", ".yml")):
            continue  # key files an Issuer read
        try:
            text = (root / relative).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(PolicyError(relative, 1, 1, "", f"cannot read: {exc}"))
            continue
        found, problems = parse_documents(relative, text)
        documents.extend(found)
        errors.extend(problems)
    return documents, errors


def diff_bundles(
    old: Snapshot,
    old_documents: Sequence[Document],
    new: Snapshot,
    new_documents: Sequence[Document],
) -> BundleDiff:
    """Compare two loaded bundles (and the documents they were loaded from)."""
    before, after = _rules(old_documents), _rules(new_documents)
    changes = [
        _rule_change(before.get(rule_id), after.get(rule_id)) for rule_id in {*before, *after}
    ]
    rules = sorted(
        (c for c in changes if c is not None), key=lambda c: (c.tenant != "", c.tenant, c.rule)
    )
    documents = _document_changes(old, old_documents, new, new_documents)
    return BundleDiff(old.version, new.version, tuple(rules), tuple(documents))


# --- rules ----------------------------------------------------------------------------


def _rules(documents: Iterable[Document]) -> dict[str, _Rule]:
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


def _rule_change(old: _Rule | None, new: _Rule | None) -> RuleChange | None:
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


# --- other documents ------------------------------------------------------------------


def _document_changes(
    old: Snapshot,
    old_documents: Sequence[Document],
    new: Snapshot,
    new_documents: Sequence[Document],
) -> list[DocumentChange]:
    before, after = _specs(old_documents), _specs(new_documents)
    old_issuers = {issuer.name: issuer for issuer in old.issuers}
    new_issuers = {issuer.name: issuer for issuer in new.issuers}
    changes = []
    for kind, name in sorted({*before, *after}):
        a, b = before.get((kind, name)), after.get((kind, name))
        if a is None:
            change = "+"
        elif b is None:
            change = "-"
        elif a != b or (kind == "Issuer" and old_issuers.get(name) != new_issuers.get(name)):
            change = "~"  # an Issuer also changes when the keys of its jwksFile do
        else:
            continue
        changes.append(DocumentChange(change, kind, name, _document_widens(kind, change, a, b)))
    return changes


def _specs(documents: Iterable[Document]) -> dict[tuple[str, str], Any]:
    found = {}
    for document in documents:
        value = document.value
        if isinstance(value, dict) and value.get("kind") not in (None, "Policy"):
            found[(value["kind"], value["metadata"]["name"])] = value.get("spec")
    return found


def _document_widens(kind: str, change: str, old: Any, new: Any) -> tuple[str, ...]:
    if kind == "Issuer" and change != "-":
        return ("a trusted issuer added" if change == "+" else "issuer settings or keys changed",)
    if kind == "Tenancy":
        return ("tenant recognition or platform roles changed",)
    if kind == "Lockdown" and change != "+":
        return ("lockdown lifted" if change == "-" else "lockdown changed",)
    if kind == "Revocations" and change != "+":
        kept = new or {}
        lost = [
            field for field, values in (old or {}).items() if set(values) - set(kept.get(field, ()))
        ]
        if lost:
            return (f"revocations withdrawn ({', '.join(sorted(lost))})",)
    return ()
