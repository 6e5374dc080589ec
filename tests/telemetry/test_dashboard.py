"""deploy/grafana/authz-dashboard.json: valid JSON whose every query parses in promtool and
names only metrics the service exposes; every metric is on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from authz.telemetry.fleet import WORKER_UP
from tests.telemetry.scrape import promtool, samples
from tests.telemetry.test_alert_rules import METRIC, REPO

DASHBOARD = REPO / "deploy" / "grafana" / "authz-dashboard.json"
# Grafana's variables, as Grafana would fill them in.
VARIABLES = {"$__rate_interval": "5m", "$instance": ".*"}


def queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels and variables, variables filled in."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    found += [
        variable["definition"].removeprefix("label_values(").partition(",")[0]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    for name, value in VARIABLES.items():
        found = [query.replace(name, value) for query in found]
    return found


def test_every_query_parses(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries())]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", str(path))


def test_queries_name_exposed_metrics_and_show_each_one(every_metric: str) -> None:
    exposed = {name for name, _ in samples(every_metric)} | {WORKER_UP}  # `serve --workers`
    referenced = {name for query in queries() for name in METRIC.findall(query)}
    assert referenced <= exposed
    families = {
        name.removesuffix("_bucket") for name in exposed if not name.endswith(("_sum", "_count"))
    }
    assert families <= {name.removesuffix("_bucket") for name in referenced}
