"""`authz diff`: rule changes compared by meaning, and the ones that widen access flagged."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from authz.policy.bundle import load_bundle
from authz.policy.diff import BundleDiff, bundle_documents, diff_bundles
from tests.authoring.commands import POLICIES, authz, copy_example

BASE_RULES = """\
- name: read
  from: [{roles: [reader], notRoles: [banned]}]
  to: [{methods: [GET], paths: ["/docs/*"], notPaths: ["/docs/secret/*"]}]
  when: 'request.headers["x-region"] == "eu"'
- name: block
  action: DENY
  from: [{principals: ["cluster.local/ns/legacy/sa/batch"]}]
  to: [{paths: ["/docs/*"]}]
- name: watch
  action: AUDIT
  from: [{roles: [admin]}]
"""


def policy(rules: str, *, tenant: str | None = None, hosts: str | None = None) -> str:
    meta = f"{{name: docs, tenant: {tenant}}}" if tenant else "{name: docs}"
    spec = f"  hosts: {hosts}\n" if hosts else ""
    body = textwrap.indent(rules, "    ")
    return f"apiVersion: authz/v1\nkind: Policy\nmetadata: {meta}\nspec:\n{spec}  rules:\n{body}"


def edit(old: str, new: str) -> str:
    assert old in BASE_RULES, old
    return BASE_RULES.replace(old, new, 1)


def without(name: str) -> str:
    """BASE_RULES without the rule ``name``."""
    rules = BASE_RULES.split("- name: ")[1:]
    return "".join(f"- name: {rule}" for rule in rules if not rule.startswith(name + "\n"))


WHEN = """  when: 'request.headers["x-region"] == "eu"'\n"""


# (new rules, expected change of docs/read or docs/block, whether it widens access)
CHANGES = {
    # ALLOW rules
    "allow-added": (BASE_RULES + "- name: more\n  to: [{paths: [/x]}]\n", "+ docs/more", True),
    "allow-added-dry-run": (
        BASE_RULES + "- name: more\n  dryRun: true\n  to: [{paths: [/x]}]\n",
        "+ docs/more",
        False,
    ),
    "allow-removed": (without("read"), "- docs/read", False),
    "more-methods": (edit("methods: [GET]", "methods: [GET, POST]"), "~ docs/read", True),
    "to-field-added": (edit("methods: [GET]", "methods: [GET], hosts: [a.example]"), "~", False),
    "more-roles": (edit("roles: [reader]", "roles: [reader, guest]"), "~ docs/read", True),
    "prefix-narrowed": (edit('paths: ["/docs/*"], not', 'paths: ["/docs/a"], not'), "~", False),
    "prefix-widened": (edit('paths: ["/docs/*"], not', 'paths: ["/d*"], not'), "~", True),
    "not-value-removed": (edit("notRoles: [banned]", "notRoles: [x]"), "~ docs/read", True),
    "not-value-added": (edit("notRoles: [banned]", "notRoles: [banned, x]"), "~", False),
    "not-field-removed": (edit(', notPaths: ["/docs/secret/*"]', ""), "~ docs/read", True),
    "from-entry-added": (
        edit(
            "from: [{roles: [reader], notRoles: [banned]}]",
            "from: [{roles: [reader]}, {roles: [x]}]",
        ),
        "~ docs/read",
        True,
    ),
    "from-removed": (edit("  from: [{roles: [reader], notRoles: [banned]}]\n", ""), "~", True),
    "field-added": (edit("roles: [reader],", "roles: [reader], namespaces: [a],"), "~", False),
    "when-removed": (edit(WHEN, ""), "~ docs/read", True),
    "when-changed": (edit('== "eu"', '!= "us"'), "~ docs/read", True),
    "when-reformatted": (
        edit(WHEN, '  when: >-\n    request.headers["x-region"]\n    ==  "eu"\n'),
        "",
        False,
    ),
    "when-literal-changed": (edit('"eu"', '"eu "'), "~ docs/read", True),
    "allow-becomes-deny": (edit("- name: read\n", "- name: read\n  action: DENY\n"), "~", False),
    "allow-becomes-dry-run": (edit("- name: read\n", "- name: read\n  dryRun: true\n"), "~", False),
    "entries-reordered": (
        edit("methods: [GET], paths", "paths").replace("notPaths", "methods: [GET], notPaths"),
        "",
        False,
    ),
    "spiffe-prefix": (edit('["cluster.local', '["spiffe://cluster.local'), "", False),
    # DENY rules
    "deny-removed": (without("block"), "- docs/block", True),
    "deny-added": (
        BASE_RULES + "- name: stop\n  action: DENY\n  to: [{paths: [/x]}]\n",
        "+",
        False,
    ),
    "deny-dry-run": (
        edit("action: DENY\n", "action: DENY\n  dryRun: true\n"),
        "~ docs/block",
        True,
    ),
    "deny-narrowed-by-when": (
        edit(
            '  to: [{paths: ["/docs/*"]}]\n',
            '  to: [{paths: ["/docs/*"]}]\n  when: \'tenant == "a"\'\n',
        ),
        "~ docs/block",
        True,
    ),
    "deny-narrowed-paths": (
        edit('to: [{paths: ["/docs/*"]}]', 'to: [{paths: ["/docs/a/*"]}]'),
        "~",
        True,
    ),
    "deny-widened": (edit('to: [{paths: ["/docs/*"]}]', 'to: [{paths: ["*"]}]'), "~", False),
    "deny-becomes-audit": (edit("action: DENY", "action: AUDIT"), "~ docs/block", True),
    # AUDIT rules never change access
    "audit-changed": (edit("roles: [admin]", "roles: [admin, ops]"), "~ docs/watch", False),
}


@pytest.mark.parametrize(("rules", "change", "widens"), CHANGES.values(), ids=CHANGES.keys())
def test_rule_changes_that_widen_access_are_flagged(
    tmp_path: Path, rules: str, change: str, widens: bool
) -> None:
    diff = compare(tmp_path, {"docs.yaml": policy(BASE_RULES)}, {"docs.yaml": policy(rules)})

    lines = [f"{c.change} {c.rule}" for c in diff.rules]
    assert any(line.startswith(change) for line in lines) if change else not diff.rules, lines
    assert diff.widens is widens, diff.as_text()


@pytest.mark.parametrize(
    ("old", "new", "widens"),
    [
        ({"tenant": None}, {"tenant": "acme"}, False),
        ({"tenant": "acme"}, {"tenant": None}, True),
        ({"tenant": "acme"}, {"tenant": "globex"}, True),
        ({"hosts": None}, {"hosts": "[a.example]"}, False),
        ({"hosts": "[a.example]"}, {"hosts": None}, True),
        ({"hosts": "[a.example]"}, {"hosts": "['*.example']"}, True),
        ({"hosts": "['*.example']"}, {"hosts": "[a.example]"}, False),
    ],
    ids=[
        "platform-to-tenant",
        "tenant-to-platform",
        "tenant-to-tenant",
        "hosts-added",
        "hosts-removed",
        "hosts-wildcard",
        "hosts-narrowed",
    ],
)
def test_policy_scope_changes(
    tmp_path: Path, old: dict[str, str | None], new: dict[str, str | None], widens: bool
) -> None:
    rules = "- name: read\n  to: [{paths: [/x]}]\n"
    diff = compare(tmp_path, {"p.yaml": policy(rules, **old)}, {"p.yaml": policy(rules, **new)})

    assert [c.rule for c in diff.rules] == ["docs/read"]
    assert diff.widens is widens, diff.as_text()


def test_rules_are_grouped_by_tenant_platform_first(tmp_path: Path) -> None:
    rules = "- name: read\n  to: [{paths: [/x]}]\n"
    new = {
        "a.yaml": policy(rules, tenant="zeta").replace("name: docs", "name: z"),
        "b.yaml": policy(rules).replace("name: docs", "name: p"),
        "c.yaml": policy(rules, tenant="acme").replace("name: docs", "name: a"),
    }

    diff = compare(tmp_path, {"x.yaml": policy(rules).replace("name: docs", "name: x")}, new)

    assert [(c.tenant, c.rule) for c in diff.rules] == [
        ("", "p/read"),
        ("", "x/read"),
        ("acme", "a/read"),
        ("zeta", "z/read"),
    ]
    text = diff.as_text()
    assert text.index("platform:") < text.index("tenant acme:") < text.index("tenant zeta:")


def test_the_example_bundle_against_a_proposed_change(tmp_path: Path) -> None:
    proposed = copy_example(tmp_path / "proposed")
    payments = proposed / "platform" / "payments.yaml"
    payments.write_text(payments.read_text().replace("[order, shipping]", "[order, shipping, x]"))

    run = authz("diff", str(POLICIES), str(proposed))

    assert run.status == 3, run.stdout + run.stderr
    assert "~ ALLOW payments/services-read-payments  (platform/payments.yaml:" in run.stdout
    assert "WIDENS: ALLOW loosened: from" in run.stdout
    assert "from: - {namespaces: [order, shipping]}" in run.stdout
    assert "from: + {namespaces: [order, shipping, x]}" in run.stdout


@pytest.mark.parametrize(
    ("change", "status"),
    [("", 0), ("comment", 0), ("narrow", 1), ("widen", 3), ("broken", 2)],
    ids=["same", "comment-only", "narrows", "widens", "broken"],
)
def test_exit_status(tmp_path: Path, change: str, status: int) -> None:
    proposed = copy_example(tmp_path / "proposed")
    health = proposed / "platform" / "health.yaml"
    text = health.read_text()
    edits = {
        "comment": ("# Liveness", "# Probes. Liveness"),
        "narrow": ("[GET, HEAD]", "[GET]"),
        "widen": ("[GET, HEAD]", "[GET, HEAD, POST]"),
        "broken": ("methods:", "method:"),
    }
    if change:
        health.write_text(text.replace(*edits[change]))

    run = authz("diff", str(POLICIES), str(proposed), "--json")

    assert run.status == status, run.stdout + run.stderr
    if change == "broken":
        assert f"{proposed}: platform/health.yaml:" in run.stderr
    else:
        assert json.loads(run.stdout)["widens"] is (status == 3)


DOCUMENT_CHANGES = {
    "issuer-added": ("", "ISSUER", "+ Issuer other-idp", True),
    "issuer-changed": ("ISSUER", "ISSUER2", "~ Issuer other-idp", True),
    "lockdown-lifted": ("LOCKDOWN", "", "- Lockdown incident", True),
    "lockdown-declared": ("", "LOCKDOWN", "+ Lockdown incident", False),
    "revocation-withdrawn": ("REVOKE2", "REVOKE1", "~ Revocations revoked", True),
    "revocation-added": ("REVOKE1", "REVOKE2", "~ Revocations revoked", False),
}
DOCUMENTS = {
    "ISSUER": "kind: Issuer\nmetadata: {name: other-idp}\nspec:\n  issuer: https://o.example\n"
    "  audiences: [a]\n  jwksUri: https://o.example/jwks\n",
    "ISSUER2": "kind: Issuer\nmetadata: {name: other-idp}\nspec:\n  issuer: https://o.example\n"
    "  audiences: [a, b]\n  jwksUri: https://o.example/jwks\n",
    "LOCKDOWN": "kind: Lockdown\nmetadata: {name: incident}\nspec: {reason: leak}\n",
    "REVOKE1": "kind: Revocations\nmetadata: {name: revoked}\nspec: {subjects: [a]}\n",
    "REVOKE2": "kind: Revocations\nmetadata: {name: revoked}\nspec: {subjects: [a, b]}\n",
}


@pytest.mark.parametrize(
    ("old", "new", "change", "widens"), DOCUMENT_CHANGES.values(), ids=DOCUMENT_CHANGES.keys()
)
def test_document_changes(tmp_path: Path, old: str, new: str, change: str, widens: bool) -> None:
    base = {"docs.yaml": policy(BASE_RULES)}
    before = {**base, **({"d.yaml": "apiVersion: authz/v1\n" + DOCUMENTS[old]} if old else {})}
    after = {**base, **({"d.yaml": "apiVersion: authz/v1\n" + DOCUMENTS[new]} if new else {})}

    diff = compare(tmp_path, before, after)

    assert [f"{d.change} {d.kind} {d.name}" for d in diff.documents] == [change]
    assert diff.widens is widens
    assert diff.rules == ()


def compare(tmp_path: Path, old: dict[str, str], new: dict[str, str]) -> BundleDiff:
    """Write both bundles, load them and diff them."""
    loaded = []
    for name, files in (("old", old), ("new", new)):
        root = tmp_path / name
        for relative, text in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
        snapshot = load_bundle(root)
        documents, errors = bundle_documents(root, snapshot)
        assert not errors
        loaded.append((snapshot, documents))
    (before, before_documents), (after, after_documents) = loaded
    return diff_bundles(before, before_documents, after, after_documents)
