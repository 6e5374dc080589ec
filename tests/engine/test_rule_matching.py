"""One ALLOW rule at a time (spec §4): ``from`` / ``to`` fields, their negations,
lists as OR, fields as AND, through ``decide`` on a compiled bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authz.decision import Reason
from authz.engine import decide
from tests.engine.checks import attributes
from tests.policy.bundles import ISSUER_YAML, NOW, SigningKey, compile_bundle

ORDER = "spiffe://cluster.local/ns/order/sa/api"
SHIPPING = "spiffe://cluster.local/ns/shipping/sa/labels"

# id -> (rule fields, request, token claims (None: no token), allowed?)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any] | None, bool]] = {
    # principals / notPrincipals
    "principals-match": (
        "from: [{principals: [cluster.local/ns/order/sa/api]}]",
        {"principal": ORDER},
        None,
        True,
    ),
    "principals-other": (
        "from: [{principals: [cluster.local/ns/order/sa/api]}]",
        {"principal": SHIPPING},
        None,
        False,
    ),
    "principals-none": ("from: [{principals: ['*']}]", {}, None, False),
    "notPrincipals-excluded": (
        "from: [{notPrincipals: ['cluster.local/ns/order/*']}]",
        {"principal": ORDER},
        None,
        False,
    ),
    "notPrincipals-other": (
        "from: [{notPrincipals: ['cluster.local/ns/order/*']}]",
        {"principal": SHIPPING},
        None,
        True,
    ),
    "notPrincipals-star-means-no-peer": ("from: [{notPrincipals: ['*']}]", {}, None, True),
    # namespaces / notNamespaces
    "namespaces-match": ("from: [{namespaces: [order]}]", {"principal": ORDER}, None, True),
    "namespaces-other": ("from: [{namespaces: [order]}]", {"principal": SHIPPING}, None, False),
    "namespaces-prefix": ("from: [{namespaces: ['ship*']}]", {"principal": SHIPPING}, None, True),
    "namespaces-odd-principal": (
        "from: [{namespaces: ['*']}]",
        {"principal": "spiffe://td/workload"},
        None,
        False,
    ),
    "notNamespaces-excluded": (
        "from: [{notNamespaces: [order]}]",
        {"principal": ORDER},
        None,
        False,
    ),
    "notNamespaces-other": (
        "from: [{notNamespaces: [order]}]",
        {"principal": SHIPPING},
        None,
        True,
    ),
    # requestPrincipals / notRequestPrincipals: <iss>/<sub>
    "requestPrincipals-exact": (
        "from: [{requestPrincipals: [https://idp.test/alice]}]",
        {},
        {"sub": "alice"},
        True,
    ),
    "requestPrincipals-other-sub": (
        "from: [{requestPrincipals: [https://idp.test/alice]}]",
        {},
        {"sub": "bob"},
        False,
    ),
    "requestPrincipals-prefix": (
        "from: [{requestPrincipals: ['https://idp.test/*']}]",
        {},
        {"sub": "bob"},
        True,
    ),
    "requestPrincipals-sub-only-is-not-enough": (
        "from: [{requestPrincipals: [alice]}]",
        {},
        {"sub": "alice"},
        False,
    ),
    "requestPrincipals-no-token": ("from: [{requestPrincipals: ['*']}]", {}, None, False),
    "requestPrincipals-token-without-sub": (
        "from: [{requestPrincipals: ['*']}]",
        {},
        {"sub": None},
        False,
    ),
    "notRequestPrincipals-excluded": (
        "from: [{notRequestPrincipals: ['*/alice']}]",
        {},
        {"sub": "alice"},
        False,
    ),
    "notRequestPrincipals-other": (
        "from: [{notRequestPrincipals: ['*/alice']}]",
        {},
        {"sub": "bob"},
        True,
    ),
    # roles / notRoles
    "roles-one-of": ("from: [{roles: [admin, editor]}]", {}, {"roles": ["viewer", "editor"]}, True),
    "roles-none-of": ("from: [{roles: [admin, editor]}]", {}, {"roles": ["viewer"]}, False),
    "roles-space-separated-claim": (
        "from: [{roles: [editor]}]",
        {},
        {"roles": "viewer editor"},
        True,
    ),
    "roles-prefix": ("from: [{roles: ['vendor:*']}]", {}, {"roles": ["vendor:staff"]}, True),
    "notRoles-excluded": (
        "from: [{notRoles: [suspended]}]",
        {},
        {"roles": ["user", "suspended"]},
        False,
    ),
    "notRoles-other": ("from: [{notRoles: [suspended]}]", {}, {"roles": ["user"]}, True),
    "notRoles-no-token": ("from: [{notRoles: [suspended]}]", {}, None, True),
    # authenticated
    "authenticated-true-with-token": ("from: [{authenticated: true}]", {}, {}, True),
    "authenticated-true-without": ("from: [{authenticated: true}]", {}, None, False),
    "authenticated-false-without": ("from: [{authenticated: false}]", {}, None, True),
    "authenticated-false-with-token": ("from: [{authenticated: false}]", {}, {}, False),
    # fields in one entry = AND, entries = OR
    "from-fields-and": (
        "from: [{namespaces: [order], roles: [admin]}]",
        {"principal": ORDER},
        {"roles": ["user"]},
        False,
    ),
    "from-fields-and-both": (
        "from: [{namespaces: [order], roles: [admin]}]",
        {"principal": ORDER},
        {"roles": ["admin"]},
        True,
    ),
    "from-entries-or": (
        "from: [{namespaces: [billing]}, {roles: [admin]}]",
        {"principal": ORDER},
        {"roles": ["admin"]},
        True,
    ),
    # methods / notMethods
    "methods-match": ("to: [{methods: [GET, HEAD]}]", {"method": "HEAD"}, None, True),
    "methods-other": ("to: [{methods: [GET, HEAD]}]", {"method": "POST"}, None, False),
    "methods-lower-case-request": ("to: [{methods: [GET]}]", {"method": "get"}, None, True),
    "notMethods-excluded": ("to: [{notMethods: [DELETE]}]", {"method": "DELETE"}, None, False),
    "notMethods-other": ("to: [{notMethods: [DELETE]}]", {"method": "GET"}, None, True),
    # paths / notPaths (on the normalised path)
    "paths-exact": ("to: [{paths: [/a/b]}]", {"path": "/a/b?x=1"}, None, True),
    "paths-normalised": ("to: [{paths: [/a/b]}]", {"path": "//a/./c/../b"}, None, True),
    "paths-decoded-unreserved": ("to: [{paths: [/a/b]}]", {"path": "/%61/%62"}, None, True),
    "paths-prefix": ("to: [{paths: ['/a/*']}]", {"path": "/a/b/c"}, None, True),
    "paths-suffix": ("to: [{paths: ['*.json']}]", {"path": "/x/y.json"}, None, True),
    "paths-template-one": ("to: [{paths: ['/a/{*}']}]", {"path": "/a/b/c"}, None, False),
    "paths-template-rest": ("to: [{paths: ['/a/{**}']}]", {"path": "/a/b/c"}, None, True),
    "paths-case-sensitive": ("to: [{paths: [/a/b]}]", {"path": "/A/b"}, None, False),
    "notPaths-excluded": ("to: [{notPaths: ['/admin/*']}]", {"path": "/admin/x"}, None, False),
    "notPaths-excluded-after-normalising": (
        "to: [{notPaths: ['/admin/*']}]",
        {"path": "/public/../admin/x"},
        None,
        False,
    ),
    "notPaths-other": ("to: [{notPaths: ['/admin/*']}]", {"path": "/public"}, None, True),
    "notPaths-template": ("to: [{notPaths: ['/admin/{**}']}]", {"path": "/admin"}, None, False),
    # hosts / notHosts
    "hosts-case-and-port": (
        "to: [{hosts: [api.shop.test]}]",
        {"host": "API.shop.test:443"},
        None,
        True,
    ),
    "hosts-other": ("to: [{hosts: [api.shop.test]}]", {"host": "www.shop.test"}, None, False),
    "hosts-suffix": ("to: [{hosts: ['*.shop.test']}]", {"host": "www.shop.test:80"}, None, True),
    "notHosts-excluded": (
        "to: [{notHosts: ['*.internal']}]",
        {"host": "db.internal:5432"},
        None,
        False,
    ),
    "notHosts-other": ("to: [{notHosts: ['*.internal']}]", {"host": "api.shop.test"}, None, True),
    # to: fields AND, entries OR; from AND to AND when
    "to-fields-and": (
        "to: [{methods: [GET], paths: [/a]}]",
        {"method": "POST", "path": "/a"},
        None,
        False,
    ),
    "to-entries-or": (
        "to: [{methods: [GET]}, {paths: [/a]}]",
        {"method": "POST", "path": "/a"},
        None,
        True,
    ),
    "from-to-when-all": (
        "from: [{namespaces: [order]}]\nto: [{methods: [GET]}]\nwhen: request.path == '/a'",
        {"principal": ORDER, "path": "/a"},
        None,
        True,
    ),
    "from-to-when-when-false": (
        "from: [{namespaces: [order]}]\nto: [{methods: [GET]}]\nwhen: request.path == '/b'",
        {"principal": ORDER, "path": "/a"},
        None,
        False,
    ),
    "empty-rule-matches-everything": ("", {"method": "PATCH", "path": "/anything"}, None, True),
}


@pytest.mark.parametrize(
    ("fields", "request_", "claims", "allowed"), CASES.values(), ids=CASES.keys()
)
def test_rule(
    tmp_path: Path,
    key: SigningKey,
    fields: str,
    request_: dict[str, Any],
    claims: dict[str, Any] | None,
    allowed: bool,
) -> None:
    rule = "- name: r\n" + "".join(f"  {line}\n" for line in fields.splitlines())
    policy = "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
    policy += "".join(f"    {line}\n" for line in rule.splitlines())
    snapshot = compile_bundle(tmp_path, {"i.yaml": ISSUER_YAML, "p.yaml": policy}, key)
    request = {"method": "GET", "path": "/a", **request_}
    if claims is not None:
        request["token"] = key.token(**claims)
    decision = decide(snapshot, attributes(**request), NOW)
    assert decision.allowed is allowed, decision
    if allowed:
        assert decision.rule == "p/r"
    else:
        assert decision.reason in (Reason.NO_MATCH, Reason.MISSING_TOKEN)
