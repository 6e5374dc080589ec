"""The rule index: ``snapshot.rules.candidates(tenant, platform_only, host, method)``.

A bundle of 1,000 tenants x 10 rules plus platform policies with and without
``hosts``. The expected candidates are computed from the tables below, never
from the index's own data.
"""

from __future__ import annotations

import pytest

from authz.policy.bundle import Snapshot, load_bundle
from authz.policy.rules import Rule
from tests.policy.bundles import policy, write_bundle

TENANTS = [f"t{number:04d}" for number in range(1000)]

# rule name -> its fields (YAML) and the exact methods it is limited to (None = any)
TENANT_RULES: dict[str, tuple[str, frozenset[str] | None]] = {
    "get": ("to: [{methods: [GET]}]", frozenset({"GET"})),
    "post": ("to: [{methods: [POST], paths: [/orders]}]", frozenset({"POST"})),
    "get-or-delete": ("to: [{methods: [GET, DELETE]}]", frozenset({"GET", "DELETE"})),
    "two-entries": ("to: [{methods: [PUT]}, {methods: [PATCH]}]", frozenset({"PUT", "PATCH"})),
    "audit-everything": ("action: AUDIT", None),
    "deny-not-get": ("action: DENY\nto: [{notMethods: [GET]}]", None),
    "any-method": ("to: [{methods: ['*']}]", None),
    "deny-prefix-method": ("action: DENY\nto: [{methods: ['P*']}]", None),
    "paths-only": ("to: [{paths: ['/items/{*}']}]", None),
    "entry-without-methods": ("to: [{methods: [GET]}, {paths: [/x]}]", None),
}
# platform policy -> its `hosts` (YAML; None = every host), and the hosts of HOSTS it matches
PLATFORM: dict[str, str | None] = {
    "plat-any": None,
    "plat-api": "[api.shop.test, www.shop.test]",
    "plat-svc": "['*.svc.cluster.local']",
    "plat-port": "['Admin.Shop.Test:8443']",
}
PLATFORM_HOSTS: dict[str, frozenset[str] | None] = {
    "plat-any": None,
    "plat-api": frozenset({"api.shop.test", "www.shop.test"}),
    "plat-svc": frozenset({"pay.ns.svc.cluster.local", "x.svc.cluster.local"}),
    "plat-port": frozenset({"admin.shop.test"}),
}
HOSTS = [
    "api.shop.test",
    "www.shop.test",
    "pay.ns.svc.cluster.local",
    "admin.shop.test",
    "svc.cluster.local",
    "other.test",
    "",
]


def _rules(tenant_rules: dict[str, tuple[str, frozenset[str] | None]]) -> str:
    lines = []
    for name, (fields, _) in tenant_rules.items():
        lines.append(f"- name: {name}")
        lines += [f"  {line}" for line in fields.splitlines()]
    return "\n".join(lines)


def _files() -> dict[str, str]:
    rules = _rules(TENANT_RULES)
    files: dict[str, str] = {}
    # Files load in sorted order: the platform policies first, the hosted one last.
    files["0-platform.yaml"] = "---\n".join(
        policy(name, rules, hosts=hosts) for name, hosts in PLATFORM.items()
    )
    for start in range(0, len(TENANTS), 100):
        chunk = TENANTS[start : start + 100]
        files[f"tenants/{start:04d}.yaml"] = "---\n".join(
            policy(f"{tenant}-policy", rules, tenant=tenant) for tenant in chunk
        )
    # A tenant policy narrowed to hosts, after all the others in bundle order.
    files["zz-hosted.yaml"] = policy(
        "t0007-hosted", rules, tenant="t0007", hosts="[t7.shop.test, '*.t7.test']"
    )
    return files


def _candidates(
    snapshot: Snapshot, tenant: str, platform_only: bool, host: str, method: str
) -> tuple[Rule, ...]:
    """Every candidate, in bundle order (the index groups them by action)."""
    found = snapshot.rules.candidates(tenant, platform_only, host, method)
    for action, group in (("DENY", found.deny), ("AUDIT", found.audit), ("ALLOW", found.allow)):
        assert all(rule.action.value == action for rule in group)
        assert [rule.ordinal for rule in group] == sorted(rule.ordinal for rule in group)
    everything: tuple[Rule, ...] = found.all
    return everything


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    root = write_bundle(tmp_path_factory.mktemp("index") / "bundle", _files())
    return load_bundle(root)


def _expected(tenant: str, platform_only: bool, host: str, method: str) -> list[str]:
    """Rule ids in bundle order, from the tables."""

    def fits(methods: frozenset[str] | None) -> bool:
        return methods is None or method in methods

    found = []
    for name, hosts in PLATFORM_HOSTS.items():
        if hosts is None or host in hosts:
            found += [f"{name}/{rule}" for rule, (_, m) in TENANT_RULES.items() if fits(m)]
    if not platform_only and tenant in TENANTS:
        found += [f"{tenant}-policy/{rule}" for rule, (_, m) in TENANT_RULES.items() if fits(m)]
        if tenant == "t0007" and host in ("t7.shop.test", "a.t7.test"):
            found += [f"t0007-hosted/{rule}" for rule, (_, m) in TENANT_RULES.items() if fits(m)]
    return found


def test_bundle_size(snapshot: Snapshot) -> None:
    assert len(snapshot.rules.rules) == (len(PLATFORM) + len(TENANTS) + 1) * len(TENANT_RULES)


@pytest.mark.parametrize("tenant", ["t0000", "t0123", "t0999", "t0007"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH", "OPTIONS"])
def test_only_platform_and_own_rules_in_bundle_order(
    snapshot: Snapshot, tenant: str, method: str
) -> None:
    found = _candidates(snapshot, tenant, False, "api.shop.test", method)
    assert [rule.id for rule in found] == _expected(tenant, False, "api.shop.test", method)
    assert {rule.tenant for rule in found} == {"", tenant}
    ordinals = [rule.ordinal for rule in found]
    assert ordinals == sorted(ordinals)


@pytest.mark.parametrize("host", HOSTS, ids=lambda h: h or "no-host")
@pytest.mark.parametrize("tenant", ["t0007", "t0500"])
def test_policy_hosts_narrow_candidates(snapshot: Snapshot, tenant: str, host: str) -> None:
    found = _candidates(snapshot, tenant, False, host, "GET")
    assert [rule.id for rule in found] == _expected(tenant, False, host, "GET")


@pytest.mark.parametrize("host", ["t7.shop.test", "a.t7.test", "t7.test", "api.shop.test"])
def test_tenant_policy_hosts(snapshot: Snapshot, host: str) -> None:
    found = [rule.id for rule in _candidates(snapshot, "t0007", False, host, "GET")]
    assert found == _expected("t0007", False, host, "GET")
    assert ("t0007-hosted/get" in found) is (host in ("t7.shop.test", "a.t7.test"))


def test_exact_methods_only_for_that_method(snapshot: Snapshot) -> None:
    found = {r.id for r in _candidates(snapshot, "t0001", False, "other.test", "DELETE")}
    assert "t0001-policy/get-or-delete" in found
    assert "t0001-policy/get" not in found
    assert "t0001-policy/post" not in found
    assert "t0001-policy/deny-not-get" in found  # no exact method: any method may match


def test_unknown_tenant_gets_platform_rules_only(snapshot: Snapshot) -> None:
    found = _candidates(snapshot, "nobody", False, "api.shop.test", "GET")
    assert [rule.id for rule in found] == _expected("nobody", False, "api.shop.test", "GET")
    assert {rule.tenant for rule in found} == {""}


def test_platform_only(snapshot: Snapshot) -> None:
    found = _candidates(snapshot, "t0042", True, "api.shop.test", "GET")
    assert [rule.id for rule in found] == _expected("t0042", True, "api.shop.test", "GET")
    assert {rule.tenant for rule in found} == {""}


def test_no_tenant(snapshot: Snapshot) -> None:
    found = _candidates(snapshot, "", False, "other.test", "POST")
    assert [rule.id for rule in found] == _expected("", False, "other.test", "POST")


def test_tcp_check_has_no_host_and_no_method(snapshot: Snapshot) -> None:
    found = [rule.id for rule in _candidates(snapshot, "t0003", False, "", "")]
    assert found == _expected("t0003", False, "", "")
    assert "plat-any/audit-everything" in found
    assert "plat-api/audit-everything" not in found


def test_answers_stay_right_after_many_distinct_hosts(snapshot: Snapshot) -> None:
    """Hosts come from clients: the memo of answers must not change them."""
    for number in range(5000):
        snapshot.rules.candidates("t0001", False, f"h{number}.test", "GET")
    found = _candidates(snapshot, "t0001", False, "api.shop.test", "GET")
    assert [rule.id for rule in found] == _expected("t0001", False, "api.shop.test", "GET")


PATH_RULES = {
    "healthz": "to: [{paths: [/healthz]}]",
    "api-prefix": "to: [{paths: ['/api/*']}]",
    "api-template": "to: [{paths: ['/api/v1/{*}/orders/{**}']}]",
    "wildcard-in-first": "to: [{paths: ['/ap*']}]",
    "suffix": "to: [{paths: ['*.json']}]",
    "template-first": "to: [{paths: ['/{*}/x']}]",
    "root": "to: [{paths: [/]}]",
    "no-paths": "to: [{methods: [GET]}]",
    "one-entry-without-paths": "to: [{paths: [/healthz]}, {methods: [GET]}]",
    "no-to": "from: [{namespaces: [a]}]",
}
# path -> the rules of PATH_RULES that may still match it (worked out by hand)
OPEN_TO_ALL = {"wildcard-in-first", "suffix", "template-first", "no-paths"}
OPEN_TO_ALL |= {"one-entry-without-paths", "no-to"}
PATH_CANDIDATES = {
    "/healthz": OPEN_TO_ALL | {"healthz"},
    "/api/v1/acme/orders": OPEN_TO_ALL | {"api-prefix", "api-template"},
    "/api": OPEN_TO_ALL | {"api-prefix", "api-template"},
    "/": OPEN_TO_ALL | {"root"},
    "/unknown/x": OPEN_TO_ALL,
}


@pytest.fixture(scope="module")
def path_bundle(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    lines = []
    for name, fields in PATH_RULES.items():
        lines += [f"- name: {name}", *(f"  {line}" for line in fields.splitlines())]
    root = write_bundle(tmp_path_factory.mktemp("paths"), {"p.yaml": policy("p", "\n".join(lines))})
    return load_bundle(root)


@pytest.mark.parametrize("path", list(PATH_CANDIDATES))
def test_candidates_by_first_path_segment(path_bundle: Snapshot, path: str) -> None:
    """A rule whose every path starts with another literal segment is never a candidate."""
    found = path_bundle.rules.candidates("", False, "api.shop.test", "GET", path)
    assert {rule.id.split("/", 1)[1] for rule in found.all} == PATH_CANDIDATES[path]


def test_candidates_without_a_path_ignore_segments(path_bundle: Snapshot) -> None:
    found = path_bundle.rules.candidates("", False, "api.shop.test", "GET")
    assert len(found.all) == len(PATH_RULES)
