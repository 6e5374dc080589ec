"""Comparing the other documents (Issuer, Tenancy, Lockdown, Revocations, PolicyTest)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from authz.policy.bundle import Snapshot
from authz.policy.diff.model import DocumentChange
from authz.policy.source import Document


def document_changes(
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
