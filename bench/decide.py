"""``python -m bench.decide``: in-process latency of ``authz.engine.decide``.

Two bundles (:mod:`bench.bundles`): the example ``policies/`` and a generated bundle of
1,000 tenants x 10 rules, each with the same request kinds and a weighted mix. Every
request is first decided once and checked against its intended outcome, so a broken
benchmark cannot report fast wrong answers. Then each call is timed with
``perf_counter_ns`` after a warm-up, the two bundles interleaved in rounds so machine
noise hits both alike. Also measured: the verified-token cache (first call vs later),
load+compile time of each bundle, and the full edge path of one Check (bytes in, bytes
out). Figures are for one CPU core of the machine in the header; targets are printed
for information only.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.internal import api_implementation

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.decision import Decision, Reason, new_decision_id
from authz.engine import decide
from authz.policy.bundle import Snapshot, load_bundle
from authz.request import RequestAttributes, from_check_request
from authz.response import ResponseTemplates
from bench import bundles, timing
from bench.bundles import KINDS, Minter, Probe, Workload
from bench.decide_report import EDGE_STAGES, MIX, P99_TARGET_US, RATIO_TARGET, render
from bench.timing import Quietness, round_sizes, stats

__all__ = [
    "Bench",
    "BenchError",
    "Settings",
    "main",
    "prepare",
    "render",
    "run",
    "verify",
]

ROOT = Path(__file__).resolve().parent.parent
_EDGE_KINDS = ("vendor_staff_allowed", "missing_token")


class BenchError(RuntimeError):
    """A benchmark request did not decide as intended: nothing is timed."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What to run; validated on construction."""

    iterations: int = 20_000
    warmup: int = 2_000
    rounds: int = 20
    tenants: int = 1_000
    spread: int | None = None  # target tenants of the generated workload; None = all
    cache_samples: int = 500
    load_repeats: int = 3
    seed: int = 7

    def __post_init__(self) -> None:
        positive = ("iterations", "rounds", "cache_samples", "load_repeats")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.warmup < 0:
            raise ValueError("warmup must not be negative")
        if self.rounds > self.iterations:
            raise ValueError("rounds must not exceed iterations")
        if self.tenants < 2 or (self.spread is not None and self.spread < 2):
            raise ValueError("tenants and spread must be at least 2 (cross-tenant requests)")


@dataclass(frozen=True, slots=True)
class Bench:
    """A workload with its loaded snapshot and what loading it cost."""

    workload: Workload
    snapshot: Snapshot
    minter: Minter
    files: int
    write_ms: float | None
    load_ms: tuple[float, ...]
    series: dict[str, tuple[RequestAttributes, ...]]  # per kind, and the mix


def prepare(settings: Settings, scratch: Path, now: datetime) -> tuple[Bench, Bench]:
    """Write both bundles under ``scratch``, load them and build their requests."""
    example_root = scratch / "example"
    bundles.copy_example(ROOT / "policies", example_root, scratch / "example.pem")
    example_minter = Minter(scratch / "example.pem", now.timestamp())
    example = bundles.build_workload(
        "example", "example (policies/)", example_root, example_minter, ["acme", "globex"], 2
    )
    names = bundles.tenant_names(settings.tenants)
    tenants_root = scratch / "tenants"
    started = time.perf_counter_ns()
    files = bundles.write_tenant_bundle(tenants_root, scratch / "tenants.pem", names)
    write_ms = (time.perf_counter_ns() - started) / 1e6
    tenants_minter = Minter(scratch / "tenants.pem", now.timestamp())
    targets = bundles.spread(names, settings.spread or len(names))
    label = f"generated {settings.tenants} tenants x {bundles.RULES_PER_TENANT} rules"
    generated = bundles.build_workload(
        "tenants", label, tenants_root, tenants_minter, targets, settings.tenants
    )
    example_files = sum(1 for path in example_root.rglob("*") if path.is_file())
    return (
        _load(example, example_minter, example_files, None, settings),
        _load(generated, tenants_minter, files + 1, write_ms, settings),
    )


def _load(
    workload: Workload, minter: Minter, files: int, write_ms: float | None, settings: Settings
) -> Bench:
    times: list[float] = []
    snapshot = None
    for _ in range(settings.load_repeats):
        started = time.perf_counter_ns()
        snapshot = load_bundle(workload.root)
        times.append((time.perf_counter_ns() - started) / 1e6)
    assert snapshot is not None
    series = {kind: tuple(p.attributes for p in probes) for kind, probes in workload.probes.items()}
    series[MIX] = workload.mix(settings.seed)
    return Bench(workload, snapshot, minter, files, write_ms, tuple(times), series)


def verify(bench: Bench, now: datetime) -> dict[str, dict[str, Any]]:
    """Decide every request once; raise :class:`BenchError` unless all decide as intended."""
    wrong: list[str] = []
    observed: dict[str, dict[str, Any]] = {}
    for kind, probes in bench.workload.probes.items():
        for probe in probes:
            decision = decide(bench.snapshot, probe.attributes, now)
            problem = _mismatch(probe, decision)
            if problem:
                wrong.append(f"{bench.workload.name}/{kind}: {problem}")
            observed.setdefault(kind, _decided(decision, len(probes)))
    if wrong:
        shown = "\n  ".join(wrong[:20])
        raise BenchError(f"{len(wrong)} request(s) did not decide as intended:\n  {shown}")
    return observed


def _mismatch(probe: Probe, decision: Decision) -> str:
    expect = probe.expect
    if decision.reason is expect.reason and decision.rule == expect.rule:
        return ""
    return (
        f"expected {expect.reason.value} ({expect.rule}), got {decision.reason.value} "
        f"({decision.rule}) detail={decision.detail!r} cel_errors={decision.cel_errors}"
    )


def _decided(decision: Decision, variants: int) -> dict[str, Any]:
    return {
        "reason": decision.reason.value,
        "status": decision.status,
        "rule": decision.rule,
        "variants": variants,
    }


def _time_decisions(
    bench: Bench, requests: Sequence[RequestAttributes], count: int, now: datetime, out: array[int]
) -> None:
    """Time ``count`` calls, continuing the rotation through ``requests`` where ``out`` ends."""
    clock = time.perf_counter_ns
    snapshot = bench.snapshot
    size = len(requests)
    start = len(out)
    for index in range(start, start + count):
        request = requests[index % size]
        began = clock()
        decide(snapshot, request, now)
        out.append(clock() - began)


def _measure(
    benches: Sequence[Bench], settings: Settings, now: datetime
) -> tuple[dict[str, dict[str, array[int]]], dict[str, Any]]:
    """Per bundle and series, the latency samples of the interleaved rounds, and how
    quiet the machine was meanwhile (thread CPU time / wall time: 1.0 = never preempted)."""
    samples = {b.workload.name: {s: array("q") for s in b.series} for b in benches}
    for bench in benches:
        for requests in bench.series.values():
            _time_decisions(bench, requests, settings.warmup, now, array("q"))
    quietness = Quietness()
    for round_index, count in enumerate(round_sizes(settings.iterations, settings.rounds)):
        # Alternate which bundle goes first, so neither always follows the other.
        for bench in benches if round_index % 2 == 0 else benches[::-1]:
            for name, requests in bench.series.items():
                _time_decisions(bench, requests, count, now, samples[bench.workload.name][name])
    return samples, quietness.report()


def _token_cache(bench: Bench, samples: int, now: datetime) -> dict[str, Any]:
    """The first decision of a fresh token (cache miss) against its second (hit)."""
    miss, hit = array("q"), array("q")
    clock = time.perf_counter_ns
    tenant = bench.workload.targets[0]
    for _ in range(samples):
        probe = bundles.vendor_staff(bench.minter, tenant)
        for out in (miss, hit):
            began = clock()
            decision = decide(bench.snapshot, probe.attributes, now)
            out.append(clock() - began)
            if _mismatch(probe, decision):
                raise BenchError(f"token cache probe: {_mismatch(probe, decision)}")
    miss_stats, hit_stats = stats(miss), stats(hit)
    return {
        "bundle": bench.workload.name,
        "kind": "vendor_staff_allowed",
        "miss": miss_stats,
        "hit": hit_stats,
        "miss_over_hit_median": round(miss_stats["median_us"] / hit_stats["median_us"], 1),
    }


def _edge_call(
    snapshot: Snapshot, payload: bytes, responses: ResponseTemplates
) -> tuple[tuple[int, ...], Any]:
    """One Check as the server runs it, with the time of each stage in ns."""
    clock = time.perf_counter_ns
    t0 = clock()
    message = external_auth_pb2.CheckRequest.FromString(payload)
    t1 = clock()
    attributes = from_check_request(message)
    t2 = clock()
    decision = decide(snapshot, attributes, datetime.now(UTC))
    t3 = clock()
    headers = attributes.http.headers if attributes.http is not None else {}
    response = responses.encode(decision, new_decision_id(), snapshot.version, headers)
    t4 = clock()
    return (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), response


def _edge(bench: Bench, kind: str, settings: Settings) -> dict[str, Any]:
    probe = bench.workload.probes[kind][0]
    payload = probe.message.SerializeToString()
    responses = ResponseTemplates()  # as the server keeps one
    _, encoded = _edge_call(bench.snapshot, payload, responses)
    response = external_auth_pb2.CheckResponse.FromString(encoded)
    reason = response.dynamic_metadata.fields["reason"].string_value
    allowed = response.HasField("ok_response")
    if reason != probe.expect.reason.value or allowed != (probe.expect.reason is Reason.ALLOWED):
        raise BenchError(f"edge {kind}: the response says {reason} (ok_response={allowed})")
    stages: list[array[int]] = [array("q") for _ in range(len(EDGE_STAGES) + 1)]
    for index in range(settings.warmup + settings.iterations):
        durations, _ = _edge_call(bench.snapshot, payload, responses)
        if index >= settings.warmup:
            for out, value in zip(stages, durations, strict=True):
                out.append(value)
    return {
        "bundle": bench.workload.name,
        "outcome": reason,
        "request_bytes": len(payload),
        "response_bytes": len(encoded),
        "total": stats(stages[-1]),
        "stage_median_us": {
            name: stats(out)["median_us"] for name, out in zip(EDGE_STAGES, stages, strict=False)
        },
    }


def run(settings: Settings) -> dict[str, Any]:
    """Run the whole benchmark; returns the report (see ``--json``)."""
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-decide-") as scratch:
        benches = prepare(settings, Path(scratch), now)
        observed = {b.workload.name: verify(b, now) for b in benches}
        gc.collect()
        samples, conditions = _measure(benches, settings, now)
        cache = _token_cache(benches[0], settings.cache_samples, now)
        edge = {kind: _edge(benches[0], kind, settings) for kind in _EDGE_KINDS}
    decisions = {
        name: {
            series: {
                **({"decided": observed[name][series]} if series in KINDS else {}),
                **stats(s),
            }
            for series, s in by_series.items()
        }
        for name, by_series in samples.items()
    }
    return {
        "machine": _machine(),
        "settings": {
            "iterations": settings.iterations,
            "warmup": settings.warmup,
            "rounds": settings.rounds,
            "tenants": settings.tenants,
            "spread": len(benches[1].workload.probes["vendor_staff_allowed"]),
            "cache_samples": settings.cache_samples,
            "mix_weights": dict(KINDS),
        },
        "conditions": conditions,
        "targets": {"decision_p99_us": P99_TARGET_US, "tenants_over_example": RATIO_TARGET},
        "bundles": {b.workload.name: _bundle_report(b) for b in benches},
        "decisions": decisions,
        "ratios": _ratios(decisions["tenants"], decisions["example"]),
        "token_cache": cache,
        "edge": edge,
    }


def _bundle_report(bench: Bench) -> dict[str, Any]:
    ordered = sorted(bench.load_ms)
    return {
        "label": bench.workload.label,
        "tenants": bench.workload.tenants,
        "rules": len(bench.snapshot.rules.rules),
        "files": bench.files,
        "write_ms": None if bench.write_ms is None else round(bench.write_ms, 1),
        "load_ms": {"median": round(ordered[len(ordered) // 2], 1), "min": round(ordered[0], 1)},
        "load_repeats": len(ordered),
    }


def _ratios(tenants: dict[str, Any], example: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        series: {
            key: round(tenants[series][f"{key}_us"] / example[series][f"{key}_us"], 2)
            for key in ("median", "p99")
        }
        for series in example
    }


def _machine() -> dict[str, Any]:
    return {
        **timing.machine(),
        "protobuf": f"{importlib.metadata.version('protobuf')} ({api_implementation.Type()})",
        "cel_expr_python": importlib.metadata.version("cel-expr-python"),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.decide", description=__doc__)
    defaults = Settings()
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--tenants", type=int, default=defaults.tenants)
    parser.add_argument("--spread", type=int, default=None, help="target tenants (default: all)")
    parser.add_argument("--cache-samples", type=int, default=defaults.cache_samples)
    parser.add_argument("--load-repeats", type=int, default=defaults.load_repeats)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings(
            args.iterations,
            args.warmup,
            args.rounds,
            args.tenants,
            args.spread,
            args.cache_samples,
            args.load_repeats,
            args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        report = run(settings)
    except BenchError as exc:
        print(f"bench.decide: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
