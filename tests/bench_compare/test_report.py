"""The pure parts of the comparison: open-loop plans, settings, the headline figures."""

from __future__ import annotations

from typing import Any

import pytest

from bench.compare.cli import make_parser, settings_from
from bench.compare.load import Measured, OpenLoopPlan, combined
from bench.compare.report import headline_values, headlines, table
from bench.compare.run import Settings


@pytest.mark.parametrize(
    ("rate", "connections", "per_connection", "spacing_ms"),
    [(50, 1, 50, 20), (250, 3, 83, 4), (1000, 10, 100, 1), (4000, 40, 100, 1)],
    ids=["50", "250", "1000", "4000"],
)
def test_a_rate_is_spread_over_connections_of_at_most_100_rps(
    rate: int, connections: int, per_connection: int, spacing_ms: int
) -> None:
    plan = OpenLoopPlan.for_rate(rate, duration_s=2)
    assert (plan.connections, plan.per_connection_rps, plan.spacing_ms) == (
        connections, per_connection, spacing_ms,
    )  # fmt: skip
    assert plan.requests == connections * per_connection * 2
    assert abs(plan.offered_rps - rate) <= connections
    argv = plan.argv()
    assert argv[argv.index("--rps") + 1] == str(per_connection)
    assert argv[argv.index("--rate-period") + 1] == f"{spacing_ms}ms"


@pytest.mark.parametrize("rate", [0, -5])
def test_a_plan_refuses_a_rate_below_one(rate: int) -> None:
    with pytest.raises(ValueError):
        OpenLoopPlan.for_rate(rate, duration_s=1)


@pytest.mark.parametrize(
    "changes",
    [
        {"setups": ("nginx",)},
        {"setups": ()},
        {"rates": (0,)},
        {"duration_s": 0},
        {"streams": 0},
        {"rounds": 0},
    ],
    ids=["unknown-setup", "no-setup", "zero-rate", "zero-duration", "zero-streams", "no-rounds"],
)
def test_settings_refuse_nonsense(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Settings(**changes)


def test_quick_is_one_short_round_and_flags_override_it() -> None:
    quick = settings_from(make_parser().parse_args(["--quick"]))
    assert (quick.rounds, quick.rates, quick.duration_s) == (1, (500, 1000), 2.0)
    given = settings_from(make_parser().parse_args(["--quick", "--rates", "300", "--rounds", "2"]))
    assert (given.rounds, given.rates, given.duration_s) == (2, (300,), 2.0)
    assert settings_from(make_parser().parse_args([])) == Settings()
    with pytest.raises(ValueError):
        settings_from(make_parser().parse_args(["--duration", "0"]))


def _measured(p99_ms: float, completed: int, in_flight: int) -> Measured:
    return Measured(
        offered_rps=500, achieved_rps=499.0, completed=completed, errors=0,
        unexpected_answers=0, payload_ok=True,
        p50_ms=p99_ms / 4, p99_ms=p99_ms, p999_ms=p99_ms * 2, sent_rps=500.0,
        max_in_flight=in_flight, in_flight_cap=1280,
    )  # fmt: skip


def test_rounds_combine_into_medians_of_percentiles_and_totals_of_counts() -> None:
    # The middle round's p99 was hit by background work: the median ignores it.
    rounds = [_measured(2.0, 2500, 4), _measured(90.0, 2500, 60), _measured(3.0, 2490, 5)]
    row = combined(rounds)
    assert (row["p50_ms"], row["p99_ms"], row["p999_ms"]) == (0.75, 3.0, 6.0)
    assert (row["completed"], row["errors"], row["max_in_flight"]) == (7490, 0, 60)
    assert row["stayed_open_loop"] is True
    assert [one["p99_ms"] for one in row["rounds"]] == [2.0, 90.0, 3.0]


def _run(rate: int, p99_ms: float) -> dict[str, Any]:
    return {
        "offered_rps": rate, "achieved_rps": float(rate), "completed": rate, "errors": 0,
        "unexpected_answers": 0, "payload_ok": True, "p50_ms": p99_ms / 2, "p99_ms": p99_ms,
        "p999_ms": p99_ms * 2,
        "sent_rps": float(rate), "max_in_flight": 3, "in_flight_cap": 512,
        "stayed_open_loop": True,
    }  # fmt: skip


def _report(p99s: dict[str, dict[int, float]], saturation: float = 9000) -> dict[str, Any]:
    setups = {
        name: {
            "status": "ok",
            "saturation": _run(0, 5.0) | {"offered_rps": None, "achieved_rps": saturation},
            "rates": [_run(rate, p99) for rate, p99 in sorted(by_rate.items())],
        }
        for name, by_rate in p99s.items()
    }
    return {"setups": setups}


def test_headlines_compare_at_1000_rps_and_at_every_common_rate() -> None:
    report = _report({
        "envoy": {500: 0.4, 1000: 0.5},
        "envoy-authz": {500: 1.0, 1000: 1.75},
        "envoy-ceiling": {500: 0.9, 1000: 1.25},
        "authz": {500: 1.2, 1000: 2.0},
        "cerbos": {1000: 0.8, 2000: 1.0},
    })  # fmt: skip
    values = headline_values(report)
    assert values["envoy_authz_added_p99"] == {
        "rate": 1000, "envoy_ms": 0.5, "envoy_authz_ms": 1.75, "added_ms": 1.25,
    }  # fmt: skip
    assert values["envoy_ceiling_added_p99"]["added_ms"] == 0.75
    assert values["authz_vs_cerbos_p99"] == [
        {"rate": 1000, "authz_ms": 2.0, "cerbos_ms": 0.8, "ratio": 2.5}
    ]
    assert headlines(values) == [
        "Envoy + authz adds 1.25 ms to Envoy's own p99 at 1,000 rps (0.50 -> 1.75 ms)",
        "Envoy + the bare grpc.aio server adds 0.75 ms at 1,000 rps (0.50 -> 1.25 ms): "
        "the floor for a Python ext_authz",
        "our p99 vs Cerbos's at 1,000 rps: 2.00 vs 0.80 ms (2.50x)",
    ]


def test_headlines_use_the_nearest_common_rate_and_say_when_there_is_none() -> None:
    values = headline_values(_report({"envoy": {500: 0.4}, "envoy-authz": {500: 0.9}}))
    assert values["envoy_authz_added_p99"]["rate"] == 500
    assert values["envoy_ceiling_added_p99"] is None
    assert headlines(values)[1] == "authz vs Cerbos: no common rate measured"


def test_the_table_marks_skipped_rates_and_setups() -> None:
    report = _report({"authz": {500: 1.0}})
    report["setups"]["authz"]["rates"].append({"offered_rps": 4000, "skipped": "above saturation"})
    report["setups"]["cerbos"] = {"status": "skipped", "reason": "npm not found"}
    lines = table(report).splitlines()
    assert lines[2].split()[:2] == ["authz", "sat"]
    assert lines[3].split()[:3] == ["authz", "500", "500"]
    assert "skipped: above saturation" in lines[4]
    assert lines[5] == "cerbos        skipped: npm not found"
