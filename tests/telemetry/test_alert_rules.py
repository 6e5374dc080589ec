"""deploy/prometheus/alerts.yaml: valid for promtool, each alert unit-tested with
`promtool test rules`, documented in the runbook, and querying only metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from authz.telemetry.fleet import WORKER_UP
from tests.telemetry.scrape import promtool, samples

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
CASES = Path(__file__).with_name("alerts_test.yaml")
RUNBOOK = REPO / "docs" / "alerts.md"
METRIC = re.compile(r"\bauthz_[a-z_]+\b")


def alerts() -> dict[str, str]:
    """Each alert's expression, by name."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_promtool_checks_the_rules() -> None:
    assert "SUCCESS: 11 rules found" in promtool("check", "rules", str(RULES))


def test_promtool_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(CASES))


def test_every_alert_has_a_firing_case_and_a_quiet_one() -> None:
    cases = [
        case
        for test in yaml.safe_load(CASES.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert firing == set(alerts())
    assert quiet == set(alerts()) - {"AuthzIssuerKeysNotReady"}  # 0 is the only trigger


def test_every_alert_has_a_runbook_section() -> None:
    text = RUNBOOK.read_text()
    for name in alerts():
        assert f"\n## {name}\n" in text, name
        assert f"docs/alerts.md#{name.lower()}" in RULES.read_text()


def test_the_rules_query_only_metrics_the_service_exposes(every_metric: str) -> None:
    exposed = {name for name, _ in samples(every_metric)} | {WORKER_UP}  # `serve --workers`
    for name, expr in alerts().items():
        assert set(METRIC.findall(expr)) <= exposed, name
