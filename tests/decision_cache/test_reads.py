"""What a snapshot's decisions read (``analyse``), and what a condition reads from the
header map (``condition_reads``): a read the cache misses would be an authorization bypass."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz.cel import VARIABLES, compile_condition, condition_reads
from authz.decision_cache import HANDLING, analyse
from authz.engine import _VARIABLES
from authz.policy.bundle import load_bundle
from tests.policy.bundles import compile_bundle, policy

REPO = Path(__file__).resolve().parents[2]


def test_every_variable_the_engine_provides_is_handled() -> None:
    # A variable added to the engine (or to CEL) without a decision here would be
    # silently left out of the key: this fails first.
    assert set(HANDLING) == set(_VARIABLES) == set(VARIABLES)
    assert set(HANDLING.values()) == {"key", "part", "headers", "never"}


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ('request.headers["x-a"] == "1"', {"x-a"}),
        ("request.headers['x-a'] == '1'", {"x-a"}),
        ('"x-a" in request.headers', {"x-a"}),
        ("has(request.headers.token)", {"token"}),
        ('request.headers.token == "t"', {"token"}),
        ('.request.headers["x-a"] == "1"', {"x-a"}),
        ('request.headers["X-Upper"] == "1"', {"X-Upper"}),
        ('!("x-a" in request.headers) || request.headers["x-b"] == "2"', {"x-a", "x-b"}),
        ('[1, 2].exists(n, request.headers["x-a"] == string(n))', {"x-a"}),
        ('{"k": request.headers["x-a"]}["k"] == "1"', {"x-a"}),
        ('request.method == "GET" // request.headers', set()),
        ('request.path == "request.headers"', set()),
    ],
    ids=[
        "index", "single-quotes", "in", "has", "field", "root-dot", "upper-case", "two",
        "inside-a-macro", "map-value", "in-a-comment", "in-a-string",
    ],
)  # fmt: skip
def test_constant_names_are_read(source: str, names: set[str]) -> None:
    assert condition_reads(compile_condition(source)).headers == frozenset(names)


@pytest.mark.parametrize(
    "source",
    [
        'request.headers == {"a": "b"}',
        "size(request.headers) > 2",
        "request.headers.size() > 2",
        'request.headers["x-" + "a"] == "1"',
        'request.headers[request.path] == "1"',
        'request.headers.exists(name, name.startsWith("x-"))',
        'request.headers.all(name, name != "x-a")',
        '"x-a" + "" in request.headers',
        'request.auth.claims.hdr in request.headers',
        '[request.headers][0]["x-a"] == "1"',
        '{"m": request.headers}["m"]["x-a"] == "1"',
        '(request.headers)["x-a"] == "1" && request.headers.filter(n, true).size() > 0',
    ],
    ids=[
        "equality", "size", "size-method", "computed-key", "path-key", "exists", "all",
        "computed-in", "claim-in", "in-a-list", "in-a-map", "filter",
    ],
)  # fmt: skip
def test_any_other_use_reads_every_header(source: str) -> None:
    assert condition_reads(compile_condition(source)).headers is None


def test_the_variables_come_from_the_checked_tree() -> None:
    reads = condition_reads(compile_condition('request.time > now && "a" in request.headers'))
    assert reads.variables == {"request.time", "now", "request.headers"}


def test_the_example_bundle_is_cached_by_the_headers_it_reads() -> None:
    reads = analyse(load_bundle(REPO / "policies"))
    assert reads.uncacheable == ""
    assert reads.headers == (
        "authorization",  # the token
        "x-amount",
        "x-change-ticket",
        "x-idempotency-key",
        "x-refund-amount",
        "x-tenant-id",  # the tenancy header
    )
    assert reads.parts == ()


def test_the_test_bundle_adds_the_network_parts_and_the_certificate(bundle: Path) -> None:
    reads = analyse(load_bundle(bundle))
    assert reads.uncacheable == ""
    assert reads.headers == ("authorization", "x-count", "x-refund-amount", "x-tenant-id")
    assert reads.parts == (
        "certificate",
        "context",
        "destination.address",
        "destination.port",
        "destination.principal",
        "request.protocol",
        "request.scheme",
        "source.address",
        "source.port",
    )


@pytest.mark.parametrize(
    ("when", "why"),
    [
        ("request.time < timestamp('2100-01-01T00:00:00Z')", "reads request.time"),
        ("now < timestamp('2100-01-01T00:00:00Z')", "reads now"),
        ("request.id != ''", "reads request.id"),
        ("size(request.headers) < 100", "reads request.headers other than by a constant name"),
        ("request.headers.exists(h, h == 'x-debug')", "other than by a constant name"),
    ],
    ids=["request.time", "now", "request.id", "whole-headers", "macro-over-headers"],
)
def test_a_bundle_reading_the_clock_or_every_header_is_not_cached(
    tmp_path: Path, when: str, why: str
) -> None:
    rules = f"- name: ok\n  to: [{{paths: ['/a']}}]\n- name: x\n  when: \"{when}\"\n"
    snapshot = compile_bundle(tmp_path, {"p.yaml": policy("p", rules)})
    reads = analyse(snapshot)
    assert reads.uncacheable.startswith("rule p/x ")
    assert why in reads.uncacheable
