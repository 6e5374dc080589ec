"""Smoke test of ``python -m bench.startup``: real starts of a tiny generated bundle.

No timing or memory thresholds: the figures depend on the machine. What is pinned is
that each start reached SERVING and allowed the probe, and that the report and the
JSON say what was measured.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from bench.startup import Bundle, StartupError, main, start_once

TENANTS = 3


def test_a_tiny_run_reports_both_bundles(tmp_path: Path) -> None:
    out = io.StringIO()
    results = tmp_path / "startup.json"
    with redirect_stdout(out):
        assert main(["--tenants", str(TENANTS), "--rounds", "1", "--json", str(results)]) == 0
    report = out.getvalue()
    assert "| example bundle | 21 |" in report
    assert f"| {TENANTS} tenants x 10 rules |" in report
    assert "The large bundle adds" in report
    series = json.loads(results.read_text())["series"]
    assert [row["starts"] for row in series] == [1, 1]
    for row in series:
        assert row["to_serving_s"]["median"] > 0
        # A serving Python process with the whole server imported is tens of MiB at least.
        assert 20 < row["rss_mib"]["median"] <= row["peak_mib"]["median"]
    # The generated bundle: 10 rules per tenant, and the platform's besides.
    assert series[1]["rules"] > 10 * TENANTS


def test_a_bundle_that_cannot_load_is_an_error_not_a_figure(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "policy.yaml").write_text("kind: Policy\nspec: [not, a, mapping\n")
    bundle = Bundle("broken", broken, 0, b"")
    with pytest.raises(StartupError, match="exited"):
        start_once(bundle, tmp_path / "server.log")
