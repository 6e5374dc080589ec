"""Smoke test of ``python -m bench.compare``: the smallest real run of two local setups.

The bare gRPC ceiling and ``authz serve`` need nothing from the network. Each gets two
rounds of a 1 s saturation run and of a 1 s open-loop run at 200 req/s under the real
h2load; what is pinned is the shape of the results and that real answers were counted,
never a time.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from bench.compare.cli import main
from bench.load_h2load import H2loadError, ensure_h2load

MEASURED_KEYS = {
    "offered_rps", "achieved_rps", "completed", "errors", "unexpected_answers", "payload_ok",
    "p50_ms", "p99_ms", "p999_ms", "sent_rps", "max_in_flight", "in_flight_cap",
    "stayed_open_loop",
}  # fmt: skip
MACHINE_KEYS = {"cpu_model", "cpu_count", "python", "grpcio", "envoy", "cerbos", "h2load"}


Run = tuple[int, dict[str, Any], str, Path]  # exit code, results, printed text, JSON path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    try:
        ensure_h2load()
    except H2loadError as exc:
        pytest.skip(f"h2load (Debian nghttp2-client) is not available: {exc}")
    out = tmp_path_factory.mktemp("compare-smoke") / "results.json"
    argv = ["--only", "grpc-ceiling,authz", "--rates", "200", "--duration", "1", "--rounds", "2"]
    argv += ["--saturation", "1", "--warm-up", "0", "--out", str(out)]
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = main(argv)
    return code, json.loads(out.read_text()), printed.getvalue(), out


def test_the_run_succeeds_and_writes_json_and_plot(
    run: Run,
) -> None:
    code, results, _, out = run
    assert code == 0
    assert set(results) == {
        "started", "machine", "pinning", "settings", "load_generator", "setups", "headlines",
    }  # fmt: skip
    assert set(results["machine"]) >= MACHINE_KEYS
    assert results["machine"]["cerbos"] == "not run"
    assert list(results["setups"]) == ["grpc-ceiling", "authz"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("setup", ["grpc-ceiling", "authz"])
def test_each_setup_answered_every_request_allowed(run: Run, setup: str) -> None:
    entry = run[1]["setups"][setup]
    assert entry["status"] == "ok", entry.get("reason")
    saturation, [rate] = entry["saturation"], entry["rates"]
    for row in (saturation, rate):
        assert set(row) == {*MEASURED_KEYS, "rounds"}
        assert [set(one) for one in row["rounds"]] == [MEASURED_KEYS, MEASURED_KEYS]
    for measured in (saturation, rate, *saturation["rounds"], *rate["rounds"]):
        assert measured["completed"] > 0
        assert measured["errors"] == measured["unexpected_answers"] == 0
        assert measured["payload_ok"] is True
        assert 0 < measured["p50_ms"] <= measured["p99_ms"] <= measured["p999_ms"]
    assert saturation["offered_rps"] is None and saturation["stayed_open_loop"] is None
    assert rate["offered_rps"] == 200
    # Each round: 2 connections x 100 req/s x 1 s, all answered.
    assert [one["completed"] for one in rate["rounds"]] == [200, 200]
    assert rate["completed"] == 400
    assert rate["in_flight_cap"] == 2 * 256
    assert rate["stayed_open_loop"] is True


def test_the_table_has_a_row_per_run(run: Run) -> None:
    printed = run[2]
    for setup in ("grpc-ceiling", "authz"):
        assert any(line.split()[:2] == [setup, "sat"] for line in printed.splitlines())
        assert any(line.split()[:2] == [setup, "200"] for line in printed.splitlines())
    assert "Envoy + authz vs Envoy: no common rate measured" in printed
