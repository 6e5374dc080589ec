"""Istio string matching, path templates and host handling (spec §4.1, §3)."""

from __future__ import annotations

import pytest

from authz.identity.peers import istio_form, parse_principal
from authz.policy.matchers import (
    StringMatcher,
    compile_path_template,
    host_pattern,
    path_template_problem,
    strip_port,
)


@pytest.mark.parametrize(
    ("patterns", "value", "expected"),
    [
        pytest.param(["GET"], "GET", True, id="exact"),
        pytest.param(["GET"], "GETS", False, id="exact-is-not-prefix"),
        pytest.param(["GET"], "get", False, id="exact-is-case-sensitive"),
        pytest.param(["GET"], "", False, id="exact-vs-empty"),
        pytest.param(["ns/*"], "ns/a", True, id="prefix"),
        pytest.param(["ns/*"], "ns/", True, id="prefix-alone"),
        pytest.param(["ns/*"], "xns/a", False, id="prefix-elsewhere"),
        pytest.param(["ns/*"], "", False, id="prefix-vs-empty"),
        pytest.param(["*.svc"], "a.svc", True, id="suffix"),
        pytest.param(["*.svc"], ".svc", True, id="suffix-alone"),
        pytest.param(["*.svc"], "a.svc.x", False, id="suffix-elsewhere"),
        pytest.param(["*"], "anything", True, id="present"),
        pytest.param(["*"], "", False, id="present-needs-non-empty"),
        pytest.param(["a", "b*", "*c"], "b1", True, id="any-of-several-prefix"),
        pytest.param(["a", "b*", "*c"], "1c", True, id="any-of-several-suffix"),
        pytest.param(["a", "b*", "*c"], "a", True, id="any-of-several-exact"),
        pytest.param(["a", "b*", "*c"], "d", False, id="none-of-several"),
    ],
)
def test_string_matching(patterns: list[str], value: str, expected: bool) -> None:
    assert StringMatcher.build(patterns).matches(value) is expected


@pytest.mark.parametrize(
    ("patterns", "values", "expected"),
    [
        pytest.param(["admin"], ["user", "admin"], True, id="one-of-many"),
        pytest.param(["admin"], ["user"], False, id="none"),
        pytest.param(["*"], [], False, id="present-needs-a-value"),
        pytest.param(["*"], [""], False, id="present-needs-non-empty"),
        pytest.param(["vendor:*"], ["vendor:staff"], True, id="prefix"),
    ],
)
def test_matches_any(patterns: list[str], values: list[str], expected: bool) -> None:
    assert StringMatcher.build(patterns).matches_any(tuple(values)) is expected


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        pytest.param("api.example.com", "API.Example.COM", True, id="case-insensitive"),
        pytest.param("API.EXAMPLE.COM", "api.example.com", True, id="upper-case-pattern"),
        pytest.param("api.example.com", "api.example.com:8443", True, id="request-port"),
        pytest.param("api.example.com:8080", "api.example.com", True, id="pattern-port"),
        pytest.param("api.example.com", "api.example.org", False, id="other-host"),
        pytest.param("*.svc.cluster.local", "pay.ns.svc.cluster.local:80", True, id="suffix"),
        pytest.param("*.svc.cluster.local", "svc.cluster.local", False, id="suffix-needs-label"),
        pytest.param("*.Example.com", "a.EXAMPLE.com", True, id="suffix-case"),
        pytest.param("api.*", "API.example.com:1", True, id="prefix"),
        pytest.param("*", "a:1", True, id="present"),
        pytest.param("[::1]", "[::1]:8080", True, id="ipv6-literal"),
    ],
)
def test_hosts(pattern: str, host: str, expected: bool) -> None:
    """Hosts are compared lower-case without the port (both sides go through strip_port)."""
    assert StringMatcher.build([pattern], strip_port).matches(strip_port(host)) is expected


@pytest.mark.parametrize(
    ("pattern", "peer", "expected"),
    [
        pytest.param(
            "cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/b", True, id="spiffe-peer"
        ),
        pytest.param(
            "spiffe://cluster.local/ns/a/sa/b", "cluster.local/ns/a/sa/b", True, id="spiffe-pattern"
        ),
        pytest.param(
            "spiffe://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a/sa/b",
            True,
            id="spiffe-both",
        ),
        pytest.param("cluster.local/ns/a/sa/b", "cluster.local/ns/a/sa/b", True, id="istio-both"),
        pytest.param(
            "spiffe://cluster.local/ns/a/*", "spiffe://cluster.local/ns/a/sa/x", True, id="prefix"
        ),
        pytest.param("*/sa/b", "spiffe://other.domain/ns/z/sa/b", True, id="suffix"),
        pytest.param(
            "cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/bb", False, id="other-sa"
        ),
        pytest.param("spiffe://*", "spiffe://cluster.local/ns/a/sa/b", True, id="present"),
    ],
)
def test_principals(pattern: str, peer: str, expected: bool) -> None:
    matcher = StringMatcher.build([pattern], istio_form)
    assert matcher.matches(parse_principal(peer).principal) is expected


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        pytest.param("/items/{*}", "/items/42", True, id="one-segment"),
        pytest.param("/items/{*}", "/items/", False, id="one-segment-not-empty"),
        pytest.param("/items/{*}", "/items", False, id="one-segment-required"),
        pytest.param("/items/{*}", "/items/42/x", False, id="one-segment-only"),
        pytest.param("/items/{*}/tags", "/items/42/tags", True, id="one-segment-middle"),
        pytest.param("/items/{*}/tags", "/items/4/2/tags", False, id="one-segment-no-slash"),
        pytest.param("/items/{**}", "/items", True, id="rest-zero-segments"),
        pytest.param("/items/{**}", "/items/", True, id="rest-trailing-slash"),
        pytest.param("/items/{**}", "/items/a/b/c", True, id="rest-many-segments"),
        pytest.param("/items/{**}", "/itemsx", False, id="rest-not-a-prefix"),
        pytest.param("/items/{**}", "/other/items/a", False, id="rest-anchored"),
        pytest.param("/{*}/x/{**}", "/a/x/b/c", True, id="both"),
        pytest.param("/v1.0/{*}", "/v1x0/a", False, id="dots-are-literal"),
        pytest.param("/a+b/{*}", "/a+b/c", True, id="regex-metacharacters-literal"),
    ],
)
def test_path_templates(template: str, path: str, expected: bool) -> None:
    matcher = StringMatcher.build([template], templates=True)
    assert matcher.matches(path) is expected


def test_templates_only_when_enabled() -> None:
    """Outside paths, braces are plain characters."""
    assert StringMatcher.build(["/a/{*}"]).matches("/a/{*}")
    assert not StringMatcher.build(["/a/{*}"]).matches("/a/b")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        pytest.param("/a/{*}", None, id="one"),
        pytest.param("/a/{**}", None, id="rest"),
        pytest.param("/{*}/{*}/{**}", None, id="several"),
        pytest.param("/a/{**}/b", "{**} may only be the last segment", id="rest-not-last"),
        pytest.param("/a/{**}/{**}", "{**} may only be the last segment", id="rest-twice"),
        pytest.param("/a/x{*}", "segment 'x{*}'", id="one-mid-segment"),
        pytest.param("/a/{*}.json", "segment '{*}.json'", id="one-with-extension"),
        pytest.param("/a/{name}", "segment '{name}'", id="named"),
        pytest.param("/a/*/{*}", "'*' cannot be combined", id="star-and-template"),
        pytest.param("/a/{*}/b*", "'*' cannot be combined", id="template-and-prefix"),
        pytest.param("a/{*}", "a path template must start with '/'", id="relative"),
    ],
)
def test_path_template_problem(template: str, problem: str | None) -> None:
    found = path_template_problem(template)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


@pytest.mark.parametrize(
    ("path", "tenant"),
    [
        pytest.param("/api/v1/vendors/acme", "acme", id="no-rest"),
        pytest.param("/api/v1/vendors/acme/items/42", "acme", id="with-rest"),
        pytest.param("/api/v1/vendors/", None, id="empty-segment"),
        pytest.param("/api/v1/vendor/acme/items", None, id="other-prefix"),
    ],
)
def test_named_path_template(path: str, tenant: str | None) -> None:
    pattern = compile_path_template("/api/v1/vendors/{tenant}/{**}", "tenant")
    match = pattern.match(path)
    assert (match.group("tenant") if match else None) == tenant


@pytest.mark.parametrize(
    ("host", "tenant"),
    [
        pytest.param("acme.vendors.example.com", "acme", id="label"),
        pytest.param("a-1.vendors.example.com", "a-1", id="label-with-dash"),
        pytest.param("vendors.example.com", None, id="no-label"),
        pytest.param("a.b.vendors.example.com", None, id="two-labels"),
        pytest.param("-a.vendors.example.com", None, id="not-a-dns-label"),
        pytest.param("acme.vendorsXexample.com", None, id="dots-are-literal"),
        pytest.param("acme.vendors.example.com.evil", None, id="anchored"),
    ],
)
def test_host_template(host: str, tenant: str | None) -> None:
    pattern = host_pattern("{tenant}.Vendors.example.com", "tenant")
    match = pattern.match(host)
    assert (match.group("tenant") if match else None) == tenant


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("Example.COM", "example.com", id="lower-case"),
        pytest.param("example.com:8080", "example.com", id="port"),
        pytest.param("10.0.0.1:443", "10.0.0.1", id="ipv4-port"),
        pytest.param("10.0.0.1", "10.0.0.1", id="ipv4"),
        pytest.param("[::1]:8080", "[::1]", id="ipv6-port"),
        pytest.param("[::1]", "[::1]", id="ipv6"),
        pytest.param("::1", "::1", id="bare-ipv6"),
        pytest.param("2001:DB8::1", "2001:db8::1", id="bare-ipv6-lower-case"),
        pytest.param("[2001:DB8::1]:443", "[2001:db8::1]", id="ipv6-lower-case"),
        pytest.param("example.com:http", "example.com:http", id="non-numeric-port-kept"),
        pytest.param("", "", id="empty"),
    ],
)
def test_strip_port(host: str, expected: str) -> None:
    assert strip_port(host) == expected
