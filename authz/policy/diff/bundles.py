"""Diffing two bundles: reading the documents a bundle was loaded from, and comparing them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path as FsPath

from authz.errors import PolicyError
from authz.policy.bundle import Snapshot
from authz.policy.diff.documents import document_changes
from authz.policy.diff.model import BundleDiff
from authz.policy.diff.rules import read_rules, rule_change
from authz.policy.source import Document, parse_documents


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
    before, after = read_rules(old_documents), read_rules(new_documents)
    changes = [
        rule_change(before.get(rule_id), after.get(rule_id)) for rule_id in {*before, *after}
    ]
    rules = sorted(
        (c for c in changes if c is not None), key=lambda c: (c.tenant != "", c.tenant, c.rule)
    )
    documents = document_changes(old, old_documents, new, new_documents)
    return BundleDiff(old.version, new.version, tuple(rules), tuple(documents))
