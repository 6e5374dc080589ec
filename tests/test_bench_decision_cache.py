"""Smoke test of ``python -m bench.decision_cache``: a tiny run, its JSON shape and guards.

No timing thresholds: the figures depend on the machine. What is pinned is that every
series timed as many calls as asked, that the hit rates follow the traffic (one request
always hits, a uniform spread over many rarely does), and that the skewed picker favours
low ranks.
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from contextlib import redirect_stdout
from typing import Any

import pytest

from bench.decision_cache import SERIES, Mix, Settings, main, render, zipf_picker

ITERATIONS = 60
TINY = ["--iterations", str(ITERATIONS), "--warmup", "5", "--rounds", "3", "--size", "50"]
TINY += ["--mix", "1:1:1", "--mix", "200:50:0"]
STATS = {"n", "median_us", "p90_us", "p99_us", "max_us", "mean_us"}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*TINY, "--json"])
    assert code == 0
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_report_has_every_series_with_all_calls_timed(report: dict[str, Any]) -> None:
    assert set(report) == {"machine", "settings", "conditions", "one_request", "mixes"}
    assert set(report["one_request"]) == set(SERIES)
    for series in report["one_request"].values():
        assert set(series) >= STATS
        assert series["n"] == ITERATIONS
    assert [mix["mix"] for mix in report["mixes"]] == ["U=1 P=1 s=1", "U=200 P=50 s=0"]
    for mix in report["mixes"]:
        assert mix["off"]["n"] == mix["on"]["n"] == ITERATIONS


def test_hits_and_misses_are_what_each_series_says(report: dict[str, Any]) -> None:
    one = report["one_request"]
    total = ITERATIONS + 5 + 2  # timed, warm-up, and the answers checked first
    assert (one["hit"]["hits"], one["hit"]["misses"]) == (total - 1, 1)
    assert one["miss"]["hits"] == 0
    same, spread = report["mixes"]
    assert same["hit_rate"] == 1.0 and same["distinct_requests"] == 1
    assert spread["hit_rate"] < 0.5
    assert spread["evictions"] > 0  # more distinct requests than the 50 entries


def test_the_text_report_names_every_series(report: dict[str, Any]) -> None:
    text = render(report)
    for name in (*SERIES, "U=1 P=1 s=1", "hit rate"):
        assert name in text


def test_the_skewed_picker_favours_the_first_ranks() -> None:
    rng = random.Random(1)
    draw = zipf_picker(100, 1.2, rng)
    counts = Counter(draw() for _ in range(5000))
    assert set(counts) <= set(range(100))
    assert counts[0] > counts[1] > counts[9] > 0
    uniform = Counter(zipf_picker(4, 0.0, rng)() for _ in range(4000))
    assert min(uniform.values()) > 800


@pytest.mark.parametrize("text", ["0:5:1", "5:0:1", "5:5:-1", "5:5"], ids=str)
def test_mixes_refuse_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        Mix.parse(text)


@pytest.mark.parametrize(
    "changes",
    [{"iterations": 0}, {"rounds": 5, "iterations": 4}, {"size": 0}, {"ttl": 0.0}],
    ids=["no-iterations", "more-rounds-than-iterations", "no-size", "no-ttl"],
)
def test_settings_refuse_nonsense(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Settings(**changes)
