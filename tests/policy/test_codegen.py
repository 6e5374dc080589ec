"""Compiled rule matchers (policy/codegen.py) agree with StringMatcher on every case.

StringMatcher is the readable statement of Istio matching; the compiled
functions are what requests go through. Each pattern set is tried against
every value, both ways, so the two can never drift apart.
"""

from __future__ import annotations

import itertools

import pytest

from authz.identity.peers import istio_form
from authz.policy.codegen import compile_from, compile_rule, compile_to
from authz.policy.matchers import StringMatcher, strip_port
from authz.policy.rules import Who

PATTERN_SETS = [
    ["/a"],
    ["/a", "/b"],
    ["/a/*"],
    ["*.json"],
    ["*"],
    ["/a", "/b/*", "*.css", "/c/{*}/d", "/e/{**}"],
    ["/items/{*}"],
    ["/x/{**}"],
]
VALUES = ["", "/", "/a", "/b", "/a/b", "/a/b.json", "x.json", "/b/c.css", "/c/1/d", "/e", "/e/f/g"]
VALUES += ["/items/1", "/items/1/2", "/x", "/x/y"]


@pytest.mark.parametrize("patterns", PATTERN_SETS, ids=lambda p: ",".join(p))
@pytest.mark.parametrize("field", ["paths", "notPaths"])
def test_paths_agree(patterns: list[str], field: str) -> None:
    matcher = StringMatcher.build(patterns, templates=True)
    compiled = compile_to([{field: matcher}])
    for value in VALUES:
        expected = matcher.matches(value) is (field == "paths")
        assert compiled("GET", value, "h") is expected, value


@pytest.mark.parametrize("patterns", [["API.shop.test:443"], ["*.svc.local"], ["api*"], ["*"]])
def test_hosts_agree(patterns: list[str]) -> None:
    matcher = StringMatcher.build(patterns, strip_port)
    compiled = compile_to([{"hosts": matcher}])
    for host in ["api.shop.test", "a.svc.local", "svc.local", "apix", "", "other"]:
        assert compiled("GET", "/", host) is matcher.matches(host), host


def test_to_entries_are_or_and_fields_are_and() -> None:
    get = StringMatcher.build(["GET"])
    admin = StringMatcher.build(["/admin/*"], templates=True)
    compiled = compile_to([{"methods": get, "notPaths": admin}, {"paths": admin}])
    assert compiled("GET", "/x", "h") is True
    assert compiled("GET", "/admin/x", "h") is True  # second entry
    assert compiled("POST", "/x", "h") is False
    assert compile_to([])("ANY", "/", "") is True


ROLE_SETS = [["admin"], ["admin", "ops"], ["vendor:*"], ["*:staff"], ["*"], ["admin", "team-*"]]
ROLES = [(), ("admin",), ("user",), ("vendor:staff",), ("team-a", "x"), ("",)]


@pytest.mark.parametrize("patterns", ROLE_SETS, ids=lambda p: ",".join(p))
@pytest.mark.parametrize("negated", [False, True], ids=["roles", "notRoles"])
def test_roles_agree(patterns: list[str], negated: bool) -> None:
    matcher = StringMatcher.build(patterns)
    compiled = compile_from([(((3, negated, matcher),), None)])
    for roles in ROLES:
        hit = any(matcher.matches(role) for role in roles)
        assert compiled(Who("", "", "", roles, bool(roles))) is (hit is not negated), roles


@pytest.mark.parametrize(
    ("slot", "patterns", "values"),
    [
        (0, ["spiffe://cluster.local/ns/a/sa/b"], ["cluster.local/ns/a/sa/b", "", "x"]),
        (0, ["cluster.local/ns/a/*"], ["cluster.local/ns/a/sa/b", "cluster.local/ns/b/sa/b"]),
        (1, ["a", "b"], ["a", "b", "c", ""]),
        (2, ["https://idp/*"], ["https://idp/u1", "https://other/u1", ""]),
        (2, ["*"], ["https://idp/u1", ""]),
    ],
)
def test_caller_fields_agree(slot: int, patterns: list[str], values: list[str]) -> None:
    matcher = StringMatcher.build(patterns, istio_form if slot == 0 else str)
    for negated, value in itertools.product((False, True), values):
        compiled = compile_from([(((slot, negated, matcher),), None)])
        fields = ["", "", "", (), False]
        fields[slot] = value
        who = Who(*fields)  # type: ignore[arg-type]
        assert compiled(who) is (matcher.matches(value) is not negated), (negated, value)


def test_from_entries_are_or_and_authenticated() -> None:
    admin = StringMatcher.build(["admin"])
    ns = StringMatcher.build(["ops"])
    compiled = compile_from([(((3, False, admin),), True), (((1, False, ns),), None)])
    assert compiled(Who("", "", "u", ("admin",), True)) is True
    assert compiled(Who("", "ops", "", (), False)) is True
    assert compiled(Who("", "dev", "u", ("user",), True)) is False
    assert compile_from([((), False)])(Who("", "", "", (), True)) is False
    assert compile_from([])(Who("", "", "", (), False)) is True


def test_policy_values_never_enter_the_source() -> None:
    """A pattern that is Python code stays a string constant."""
    hostile = '" or __import__("os").system("false") or "'
    compiled = compile_to([{"paths": StringMatcher.build(["/" + hostile], templates=True)}])
    assert compiled("GET", "/" + hostile, "h") is True
    assert compiled("GET", "/other", "h") is False


def test_rule_needs_both_parts() -> None:
    admin = StringMatcher.build(["admin"])
    get = StringMatcher.build(["GET"])
    compiled = compile_rule([(((3, False, admin),), None)], [{"methods": get}])
    assert compiled(Who("", "", "u", ("admin",), True), "GET", "/", "h") is True
    assert compiled(Who("", "", "u", ("admin",), True), "PUT", "/", "h") is False
    assert compiled(Who("", "", "u", ("user",), True), "GET", "/", "h") is False
    assert compile_rule([], [])(Who("", "", "", (), False), "", "", "") is True
