"""authz.telemetry.fleet.merge: the workers' expositions as one, each sample labelled with
its worker, each family declared once, and the workers that did not answer said so."""

from __future__ import annotations

import pytest

from authz.telemetry.fleet import WorkerMetrics, merge
from tests.telemetry.scrape import promtool, samples

ONE = """\
# HELP authz_checks_total Check calls answered
# TYPE authz_checks_total counter
authz_checks_total{decision="allow",reason="allowed"} 3
# HELP authz_policy_version_info The version
# TYPE authz_policy_version_info gauge
authz_policy_version_info{version="sha256:a"} 1
# HELP authz_check_duration_seconds Time to decide
# TYPE authz_check_duration_seconds histogram
authz_check_duration_seconds_bucket{le="0.001"} 2
authz_check_duration_seconds_bucket{le="+Inf"} 3
authz_check_duration_seconds_sum 0.004
authz_check_duration_seconds_count 3
"""
TWO = ONE.replace("} 3\n", "} 5\n").replace("_count 3", "_count 5")

UP_HEADER = """\
# HELP authz_worker_up Whether worker K answered this scrape (1) or not (0: its samples are missing)
# TYPE authz_worker_up gauge
"""


def test_two_workers_merge_into_one_family_each() -> None:
    merged = merge([WorkerMetrics("1", ONE), WorkerMetrics("2", TWO)])
    assert merged == (
        "# HELP authz_checks_total Check calls answered\n"
        "# TYPE authz_checks_total counter\n"
        'authz_checks_total{worker="1",decision="allow",reason="allowed"} 3\n'
        'authz_checks_total{worker="2",decision="allow",reason="allowed"} 5\n'
        "# HELP authz_policy_version_info The version\n"
        "# TYPE authz_policy_version_info gauge\n"
        'authz_policy_version_info{worker="1",version="sha256:a"} 1\n'
        'authz_policy_version_info{worker="2",version="sha256:a"} 1\n'
        "# HELP authz_check_duration_seconds Time to decide\n"
        "# TYPE authz_check_duration_seconds histogram\n"
        'authz_check_duration_seconds_bucket{worker="1",le="0.001"} 2\n'
        'authz_check_duration_seconds_bucket{worker="1",le="+Inf"} 3\n'
        'authz_check_duration_seconds_sum{worker="1"} 0.004\n'
        'authz_check_duration_seconds_count{worker="1"} 3\n'
        'authz_check_duration_seconds_bucket{worker="2",le="0.001"} 2\n'
        'authz_check_duration_seconds_bucket{worker="2",le="+Inf"} 5\n'
        'authz_check_duration_seconds_sum{worker="2"} 0.004\n'
        'authz_check_duration_seconds_count{worker="2"} 5\n'
        + UP_HEADER
        + 'authz_worker_up{worker="1"} 1\n'
        'authz_worker_up{worker="2"} 1\n'
    )


def test_a_worker_that_did_not_answer_is_missing_and_down() -> None:
    merged = merge([WorkerMetrics("1", None), WorkerMetrics("2", TWO)])
    found = samples(merged)
    assert found[("authz_worker_up", frozenset({("worker", "1")}))] == 0
    assert found[("authz_worker_up", frozenset({("worker", "2")}))] == 1
    assert {dict(labels).get("worker") for _, labels in found} == {"1", "2"}
    assert not any(
        dict(labels)["worker"] == "1" for name, labels in found if name != "authz_worker_up"
    )


def test_no_worker_answering_still_makes_an_exposition() -> None:
    merged = merge([WorkerMetrics("1", None), WorkerMetrics("2", None)])
    assert merged == UP_HEADER + 'authz_worker_up{worker="1"} 0\nauthz_worker_up{worker="2"} 0\n'


@pytest.mark.parametrize(
    ("sample", "labelled"),
    [
        ("a_total 1", 'a_total{worker="3"} 1'),
        ("a_total{} 1", 'a_total{worker="3"} 1'),
        ('a_total{k="v"} 1', 'a_total{worker="3",k="v"} 1'),
        ('a_total{k="{ } x"} 1', 'a_total{worker="3",k="{ } x"} 1'),
        ("a_total 1 1700000000000", 'a_total{worker="3"} 1 1700000000000'),
    ],
    ids=["bare", "empty-braces", "labels", "braces-in-a-value", "timestamp"],
)
def test_each_sample_gets_the_worker_label_first(sample: str, labelled: str) -> None:
    exposition = f"# TYPE a_total counter\n{sample}\n"
    assert merge([WorkerMetrics("3", exposition)]).splitlines()[1] == labelled


def test_a_family_only_one_worker_has_is_declared_once() -> None:
    extra = ONE + "# HELP authz_jwks_keys_ready Keys\n# TYPE authz_jwks_keys_ready gauge\n"
    extra += 'authz_jwks_keys_ready{issuer="https://idp"} 1\n'
    merged = merge([WorkerMetrics("1", ONE), WorkerMetrics("2", extra)])
    assert merged.count("# TYPE authz_jwks_keys_ready gauge") == 1
    assert 'authz_jwks_keys_ready{worker="2",issuer="https://idp"} 1' in merged


def test_promtool_accepts_every_metric_of_two_workers(every_metric: str) -> None:
    merged = merge(
        [
            WorkerMetrics("1", every_metric),
            WorkerMetrics("2", every_metric),
            WorkerMetrics("3", None),
        ]
    )
    promtool("check", "metrics", stdin=merged)
    single = samples(every_metric)
    both = samples(merged)
    for (name, labels), value in single.items():
        for worker in ("1", "2"):
            assert both[(name, labels | {("worker", worker)})] == value
    assert len(both) == 2 * len(single) + 3
