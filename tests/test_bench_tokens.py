"""Smoke test of ``python -m bench.tokens``: a tiny run, its JSON shape and its guards.

No timing thresholds: the figures depend on the machine. What is pinned is that every
series ran as many calls as asked, and that a verifier which refuses the tokens, or a
path that does not hit or miss as it claims, stops the benchmark before anything is timed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from authz.identity import TokenVerifier
from bench.tokens import BenchError, Settings, Subject, check, main, prepare, render
from bench.tokens_report import ALGORITHMS, NOOP, PATHS

ITERATIONS = 40
TINY = ["--iterations", str(ITERATIONS), "--warmup", "3", "--rounds", "2", "--pool", "3"]
STATS = {"n", "median_us", "p90_us", "p99_us", "max_us"}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*TINY, "--json"])
    assert code == 0
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_report_has_every_algorithm_and_path_with_all_calls_timed(report: dict[str, Any]) -> None:
    assert set(report) == {"machine", "settings", "conditions", NOOP, "algorithms"}
    assert {"pyjwt", "cryptography", "openssl", "timer_overhead_ns"} <= set(report["machine"])
    assert report["settings"]["pool"] == 3
    assert set(report[NOOP]) == STATS and report[NOOP]["n"] == ITERATIONS
    assert tuple(report["algorithms"]) == ALGORITHMS
    for result in report["algorithms"].values():
        assert result["token_bytes"] > 0
        for path in PATHS:
            assert set(result[path]) == STATS
            assert result[path]["n"] == ITERATIONS
        assert set(result["miss_over_hit"]) == {"median", "p99"}


def test_the_text_report_names_every_algorithm_and_path(report: dict[str, Any]) -> None:
    text = render(report)
    for name in (*ALGORITHMS, "hit (cached)", "miss (verified)", "miss / hit", "no-op call"):
        assert name in text


@pytest.fixture(scope="module")
def subjects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Subject, ...]:
    scratch = tmp_path_factory.mktemp("bench-tokens")
    return prepare(Settings(pool=3), Path(scratch), time.time())


def test_prepared_subjects_pass_the_check(subjects: tuple[Subject, ...]) -> None:
    assert tuple(subject.alg for subject in subjects) == ALGORITHMS
    for subject in subjects:
        check(subject, time.time())


def test_a_refused_token_stops_the_benchmark(subjects: tuple[Subject, ...]) -> None:
    rs256, es256 = subjects[0], subjects[1]
    # An ES256 token for a verifier that trusts only the RS256 key.
    wrong = dataclasses.replace(rs256, tokens=(*rs256.tokens, es256.tokens[0]))
    with pytest.raises(BenchError, match="RS256: a token was refused"):
        check(wrong, time.time())


def test_a_miss_path_that_hits_the_cache_stops_the_benchmark(subjects: tuple[Subject, ...]) -> None:
    caching = dataclasses.replace(subjects[2], miss=subjects[2].hit)
    with pytest.raises(BenchError, match="EdDSA: the miss verifier did not verify"):
        check(caching, time.time())


def test_a_hit_path_without_a_cache_stops_the_benchmark(subjects: tuple[Subject, ...]) -> None:
    es256 = subjects[1]
    uncached = dataclasses.replace(es256, hit=TokenVerifier([es256.issuer], cache_size=0))
    with pytest.raises(BenchError, match="ES256: the hit verifier did not serve"):
        check(uncached, time.time())


@pytest.mark.parametrize(
    "changes",
    [
        {"iterations": 0},
        {"rounds": 5, "iterations": 4},
        {"warmup": -1},
        {"pool": 1},
        {"pool": 10_001},
    ],
    ids=[
        "no-iterations",
        "more-rounds-than-iterations",
        "negative-warmup",
        "pool-of-one",
        "pool-over-the-cache",
    ],
)
def test_settings_refuse_nonsense(changes: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Settings(**changes)
