"""Smoke test of ``python -m bench.decide``: a tiny run, its JSON shape and its decisions.

No timing thresholds: the figures depend on the machine. What is pinned is that every
benchmark request decides as intended, so the benchmark cannot time wrong answers.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections import Counter
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from authz.decision import Reason
from bench.bundles import KINDS, RULES_PER_TENANT, Expect
from bench.decide import BenchError, Settings, main, prepare, render, verify

TENANTS = 12
TINY = ["--iterations", "40", "--warmup", "5", "--rounds", "2", "--tenants", str(TENANTS)]
TINY += ["--spread", "6", "--cache-samples", "3", "--load-repeats", "1"]
STATS = {"n", "median_us", "p90_us", "p99_us", "max_us"}

# kind -> (reason, HTTP status, rule without the tenant's policy prefix)
INTENDED = {
    "vendor_staff_allowed": ("allowed", 200, "-vendor/staff-read-orders"),
    "public_catalog": ("allowed", 200, "storefront/browse-catalog"),
    "customer_own_orders": ("allowed", 200, "customers/read-own-orders"),
    "order_to_payment_mtls": ("allowed", 200, "payments/order-service-charges"),
    "missing_token": ("missing_token", 401, None),
    "cross_tenant": ("cross_tenant", 403, None),
    "manager_refund": ("allowed", 200, "-vendor/manager-refunds"),
}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*TINY, "--json"])
    assert code == 0
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_report_has_the_expected_keys(report: dict[str, Any]) -> None:
    assert set(report) == {
        "machine", "settings", "conditions", "targets", "bundles",
        "decisions", "ratios", "token_cache", "edge",
    }  # fmt: skip
    assert {"cpu_count", "python"} <= set(report["machine"])
    assert set(report["bundles"]) == set(report["decisions"]) == {"example", "tenants"}
    for bundle in report["bundles"].values():
        assert {"rules", "files", "load_ms", "write_ms"} <= set(bundle)
    for series in report["decisions"].values():
        assert set(series) == {*KINDS, "mix"}
        assert all(set(stats) >= STATS for stats in series.values())
    assert set(report["ratios"]) == {*KINDS, "mix"}
    assert all(set(ratio) == {"median", "p99"} for ratio in report["ratios"].values())
    assert set(report["token_cache"]["miss"]) & set(report["token_cache"]["hit"]) >= STATS
    assert set(report["edge"]) == {"vendor_staff_allowed", "missing_token"}
    assert report["decisions"]["example"]["mix"]["n"] == 40


@pytest.mark.parametrize("bundle", ["example", "tenants"])
@pytest.mark.parametrize("kind", list(INTENDED), ids=list(INTENDED))
def test_each_request_kind_decides_as_intended(
    report: dict[str, Any], bundle: str, kind: str
) -> None:
    reason, status, rule = INTENDED[kind]
    decided = report["decisions"][bundle][kind]["decided"]
    assert (decided["reason"], decided["status"]) == (reason, status)
    if rule is None:
        assert decided["rule"] is None
    else:
        assert decided["rule"].endswith(rule)


def test_edge_responses_carry_the_intended_outcome(report: dict[str, Any]) -> None:
    outcomes = {kind: edge["outcome"] for kind, edge in report["edge"].items()}
    assert outcomes == {"vendor_staff_allowed": "allowed", "missing_token": "missing_token"}


def test_the_text_report_names_every_series(report: dict[str, Any]) -> None:
    text = render(report)
    for name in (*KINDS, "mix", "verified-token cache", "edge path", "targets"):
        assert name in text


def test_generated_bundle_has_one_policy_of_ten_rules_per_tenant(tmp_path: Path) -> None:
    _, generated = prepare(Settings(tenants=TENANTS, load_repeats=1), tmp_path, datetime.now(UTC))
    per_tenant = Counter(rule.tenant for rule in generated.snapshot.rules.rules if rule.tenant)
    assert len(per_tenant) == TENANTS
    assert set(per_tenant.values()) == {RULES_PER_TENANT}
    assert generated.snapshot.tenancy.targets


def test_a_request_that_decides_otherwise_stops_the_benchmark(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    example, _ = prepare(Settings(tenants=TENANTS, load_repeats=1), tmp_path, now)
    probes = dict(example.workload.probes)
    wrong = dataclasses.replace(probes["cross_tenant"][0], expect=Expect(Reason.ALLOWED))
    probes["cross_tenant"] = (wrong, *probes["cross_tenant"][1:])
    tampered = dataclasses.replace(
        example, workload=dataclasses.replace(example.workload, probes=probes)
    )
    verify(example, now)  # the untouched workload passes
    with pytest.raises(BenchError, match="cross_tenant: expected allowed"):
        verify(tampered, now)


@pytest.mark.parametrize(
    "changes",
    [{"iterations": 0}, {"rounds": 5, "iterations": 4}, {"tenants": 1}, {"warmup": -1}],
    ids=["no-iterations", "more-rounds-than-iterations", "one-tenant", "negative-warmup"],
)
def test_settings_refuse_nonsense(changes: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Settings(**changes)
