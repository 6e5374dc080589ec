"""The bundle diff model and its rendering: rule and document changes, as JSON and as text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
