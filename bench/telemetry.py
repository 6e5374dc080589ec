"""``python -m bench.telemetry``: what metrics and traces add to one Check, in process.

The same Check (the example bundle's public catalog search, with a sampled W3C
``traceparent``) is answered by four services over one store, interleaved in rounds so
machine noise hits all alike: no observers (the build without telemetry), metrics only
(tracing off), metrics and tracing (every span sampled, batched to an in-memory
exporter), and metrics with tracing configured but the caller's trace not sampled.
Reported: median/p90/p99 µs per Check, Checks per second on one core (1/median), and
the observers' own cost (the median difference to no observers).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from authz.observe import Observer
from authz.policy.bundle import load_bundle
from authz.server import AuthorizationService
from authz.store import SnapshotStore
from authz.telemetry import CheckCounts
from authz.telemetry.tracing import CheckTracer, tracer_provider
from bench import timing
from bench.bundles import check_request

_POLICIES = Path(__file__).resolve().parents[1] / "policies"
_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"


def main() -> int:
    store = SnapshotStore(load_bundle(_POLICIES))
    provider = tracer_provider(BatchSpanProcessor(InMemorySpanExporter()), 1.0)
    variants: dict[str, tuple[list[Observer], str]] = {
        "no observers": ([], "01"),
        "metrics, tracing off": ([CheckCounts()], "01"),
        "metrics, tracing on (sampled)": ([CheckCounts(), CheckTracer(provider)], "01"),
        "metrics, tracing on (not sampled)": ([CheckCounts(), CheckTracer(provider)], "00"),
    }
    calls = {
        name: (
            AuthorizationService(store, observers=observers),
            check_request(
                "GET",
                "shop.example.com",
                "/api/v1/catalog/search?q=lamp",
                headers={"traceparent": _PARENT.format(flags=flags)},
            ),
        )
        for name, (observers, flags) in variants.items()
    }
    samples: dict[str, list[int]] = {name: [] for name in calls}
    for service, message in calls.values():  # warm-up
        for _ in range(2_000):
            service.respond(message)
    quiet = timing.Quietness()
    for size in timing.round_sizes(40_000, 20):
        for name, (service, message) in calls.items():
            found = samples[name]
            for _ in range(size):
                start = time.perf_counter_ns()
                service.respond(message)
                found.append(time.perf_counter_ns() - start)
    provider.shutdown()
    baseline = timing.stats(samples["no observers"])["median_us"]
    report = {}
    for name, found in samples.items():
        figures = timing.stats(found)
        figures["checks_per_s"] = round(1e6 / figures["median_us"])
        figures["added_median_us"] = round(figures["median_us"] - baseline, 2)
        report[name] = figures
    header = {"machine": timing.machine(), "quietness": quiet.report()}
    print(json.dumps({**header, **report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
