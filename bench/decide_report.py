"""Rendering ``python -m bench.decide`` reports as text tables, with the targets."""

from __future__ import annotations

from typing import Any

from bench.tables import quietness, table, us

__all__ = ["EDGE_STAGES", "MIX", "P99_TARGET_US", "RATIO_TARGET", "render"]

P99_TARGET_US = 150.0
RATIO_TARGET = 1.5
MIX = "mix"
EDGE_STAGES = ("parse", "attributes", "decide", "respond")


def render(report: dict[str, Any]) -> str:
    """The report as text tables."""
    sections = (_header, _bundles_table, _decisions_table, _cache_table, _edge_table, _targets)
    return "\n\n".join("\n".join(section(report)) for section in sections)


def _header(report: dict[str, Any]) -> list[str]:
    m, s, c = report["machine"], report["settings"], report["conditions"]
    return [
        "authz decision benchmark (python -m bench.decide)",
        f"machine   {m['cpu_count']} CPUs ({m['cpus_usable']} usable), {m['cpu_model']}",
        f"          {m['platform']}",
        f"python    {m['python']}, protobuf {m['protobuf']}, cel-expr-python "
        f"{m['cel_expr_python']}, gc {'on' if m['gc_enabled'] else 'off'}, "
        f"timer overhead {m['timer_overhead_ns']} ns",
        f"settings  {s['iterations']} timed calls per series and bundle after {s['warmup']} "
        f"warm-up, {s['rounds']} interleaved rounds; one thread, one core",
        f"          generated bundle: requests aimed at {s['spread']} of {s['tenants']} tenants; "
        "verified-token cache warm unless stated",
        f"timing    {quietness(c)}",
    ]


def _bundles_table(report: dict[str, Any]) -> list[str]:
    rows = []
    for bundle in report["bundles"].values():
        write = "-" if bundle["write_ms"] is None else f"{bundle['write_ms']:.1f}"
        load = bundle["load_ms"]
        rows.append(
            [
                bundle["label"],
                str(bundle["tenants"]),
                str(bundle["rules"]),
                str(bundle["files"]),
                write,
                f"{load['median']:.1f}",
                f"{load['min']:.1f}",
            ]
        )
    repeats = next(iter(report["bundles"].values()))["load_repeats"]
    header = ["bundle", "tenants", "rules", "files", "write ms", "load+compile ms", "min"]
    return [f"bundles (load+compile: median of {repeats})", *table("<>>>>>>", header, rows)]


def _decisions_table(report: dict[str, Any]) -> list[str]:
    example, tenants = report["decisions"]["example"], report["decisions"]["tenants"]
    labels = {"example": "example", "tenants": f"{report['settings']['tenants']} tenants"}
    rows = []
    for series in example:
        outcome = example[series]["decided"]["reason"] if series != MIX else "weighted"
        for name, stats in (("example", example[series]), ("tenants", tenants[series])):
            flag = "ok" if stats["p99_us"] <= P99_TARGET_US else "OVER"
            first = (series, outcome) if name == "example" else ("", "")
            rows.append([*first, labels[name], *us(stats, "median", "p90", "p99", "max"), flag])
        ratio = report["ratios"][series]
        flag = "ok" if max(ratio.values()) <= RATIO_TARGET else "OVER"
        rows.append(["", "", "ratio", f"{ratio['median']:.2f}x", "", f"{ratio['p99']:.2f}x"])
        rows[-1] += ["", flag]
    header = ["series", "outcome", "bundle", "median", "p90", "p99", "max", "target"]
    title = (
        f"decide() latency per call, µs (targets: p99 <= {P99_TARGET_US:.0f} µs; "
        f"{labels['tenants']} <= {RATIO_TARGET}x example)"
    )
    return [title, *table("<<<>>>><", header, rows)]


def _cache_table(report: dict[str, Any]) -> list[str]:
    cache = report["token_cache"]
    rows = [
        ["first call (miss: JWT verified)", *us(cache["miss"], "median", "p90", "p99", "max")],
        ["second call (hit)", *us(cache["hit"], "median", "p90", "p99", "max")],
    ]
    return [
        f"verified-token cache, µs ({cache['bundle']} bundle, {cache['kind']}, "
        f"{cache['miss']['n']} fresh tokens): miss/hit median {cache['miss_over_hit_median']}x",
        *table("<>>>>", ["decide() call", "median", "p90", "p99", "max"], rows),
    ]


def _edge_table(report: dict[str, Any]) -> list[str]:
    rows = []
    for kind, edge in report["edge"].items():
        stages = [f"{edge['stage_median_us'][stage]:.1f}" for stage in EDGE_STAGES]
        size = f"{edge['request_bytes']}/{edge['response_bytes']}"
        rows.append([kind, edge["outcome"], size, *us(edge["total"], "median", "p99"), *stages])
    header = ["request", "outcome", "bytes in/out", "median", "p99", *EDGE_STAGES]
    return [
        "edge path per Check, µs (FromString + from_check_request + decide + check_response,"
        " which encodes the reply; stage columns are medians)",
        *table("<<>>>>>>>", header, rows),
    ]


def _targets(report: dict[str, Any]) -> list[str]:
    over = [
        f"{bundle}/{series} {stats['p99_us']:.1f}"
        for bundle, by_series in report["decisions"].items()
        for series, stats in by_series.items()
        if stats["p99_us"] > P99_TARGET_US
    ]
    total = sum(len(by_series) for by_series in report["decisions"].values())
    wide = [s for s, r in report["ratios"].items() if max(r.values()) > RATIO_TARGET]
    mix = report["ratios"][MIX]
    edge = report["edge"]["vendor_staff_allowed"]["total"]["median_us"]
    return [
        "targets (informational, not asserted)",
        f"  decision p99 <= {P99_TARGET_US:.0f} µs: {total - len(over)}/{total} series met"
        + (f"; over: {', '.join(over)}" if over else ""),
        f"  {report['settings']['tenants']} tenants <= {RATIO_TARGET}x example: mix median "
        f"{mix['median']:.2f}x, p99 {mix['p99']:.2f}x; "
        + (f"over in: {', '.join(wide)}" if wide else "every series met"),
        f"  per-Check CPU on the edge path (allowed request): {edge:.1f} µs median "
        f"= about {1e6 / edge:,.0f} Checks/s per core before gRPC overhead",
    ]
