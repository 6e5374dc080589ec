"""Reading a comparison: the table, the two headline lines, and the p99 plot.

Everything here works on the JSON values :func:`bench.compare.run.run` returns, so a
saved results file can be rendered again later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["headline_values", "headlines", "plot", "table"]

ENVOY, ENVOY_AUTHZ, AUTHZ, CERBOS = "envoy", "envoy-authz", "authz", "cerbos"
ENVOY_CEILING = "envoy-ceiling"
HEADLINE_RATE = 1000


def _spread(run: dict[str, Any]) -> str:
    """The lowest and highest p99 of a row's rounds: how much the background moved it."""
    p99s = [one["p99_ms"] for one in run.get("rounds", ())]
    return f"{min(p99s):.1f}-{max(p99s):.1f}" if len(p99s) > 1 else ""


def _row(setup: str, label: str, run: dict[str, Any]) -> str:
    if "skipped" in run:
        return f"{setup:<13} {label:>8} {'skipped: ' + run['skipped']:>38}"
    notes = []
    if not run["payload_ok"]:
        notes.append("unexpected answers")
    if run.get("stayed_open_loop") is False:
        notes.append("hit in-flight cap")
    return (
        f"{setup:<13} {label:>8} {run['achieved_rps']:>9,.0f} {run['p50_ms']:>8.2f} "
        f"{run['p99_ms']:>8.2f} {_spread(run):>13} {run['p999_ms']:>8.2f} {run['errors']:>7} "
        f"{run.get('max_in_flight', ''):>6}  {', '.join(notes)}"
    ).rstrip()


def table(report: dict[str, Any]) -> str:
    """One row per setup and offered rate (``sat`` = closed-loop saturation)."""
    header = (
        f"{'setup':<13} {'offered':>8} {'achieved':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'p99 rounds':>13} {'p99.9 ms':>8} {'errors':>7} {'inflt':>6}"
    )
    rows = [header, "-" * len(header)]
    for name, setup in report["setups"].items():
        if setup["status"] != "ok":
            rows.append(f"{name:<13} {setup['status']}: {setup['reason']}")
            continue
        rows.append(_row(name, "sat", setup["saturation"]))
        rows += [_row(name, str(run["offered_rps"]), run) for run in setup["rates"]]
    return "\n".join(rows)


def _p99_at(report: dict[str, Any], setup: str) -> dict[int, float]:
    """Open-loop p99 (ms) by offered rate for a setup that ran; empty otherwise."""
    entry = report["setups"].get(setup, {})
    if entry.get("status") != "ok":
        return {}
    return {run["offered_rps"]: run["p99_ms"] for run in entry["rates"] if "p99_ms" in run}


def _nearest(rates: set[int], wanted: int) -> int | None:
    return min(rates, key=lambda rate: (abs(rate - wanted), rate)) if rates else None


def _added(report: dict[str, Any], setup: str) -> dict[str, Any] | None:
    """What ``setup`` adds to Envoy's own p99 at the common rate nearest 1,000 rps."""
    envoy, with_authz = _p99_at(report, ENVOY), _p99_at(report, setup)
    rate = _nearest(set(envoy) & set(with_authz), HEADLINE_RATE)
    if rate is None:
        return None
    return {
        "rate": rate,
        "envoy_ms": envoy[rate],
        "envoy_authz_ms": with_authz[rate],
        "added_ms": round(with_authz[rate] - envoy[rate], 3),
    }


def headline_values(report: dict[str, Any]) -> dict[str, Any]:
    """What Envoy + authz (and Envoy + the bare ceiling) add to Envoy's own p99 near
    1,000 rps, and our p99 vs Cerbos's."""
    ours, theirs = _p99_at(report, AUTHZ), _p99_at(report, CERBOS)
    versus = [
        {
            "rate": rate,
            "authz_ms": ours[rate],
            "cerbos_ms": theirs[rate],
            "ratio": round(ours[rate] / theirs[rate], 3),
        }
        for rate in sorted(set(ours) & set(theirs))
    ]
    return {
        "envoy_authz_added_p99": _added(report, ENVOY_AUTHZ),
        "envoy_ceiling_added_p99": _added(report, ENVOY_CEILING),
        "authz_vs_cerbos_p99": versus,
    }


def headlines(values: dict[str, Any]) -> list[str]:
    """The lines printed under the table, from :func:`headline_values`."""
    added = values["envoy_authz_added_p99"]
    if added is None:
        lines = ["Envoy + authz vs Envoy: no common rate measured"]
    else:
        lines = [
            f"Envoy + authz adds {added['added_ms']:.2f} ms to Envoy's own p99 at "
            f"{added['rate']:,} rps ({added['envoy_ms']:.2f} -> {added['envoy_authz_ms']:.2f} ms)"
        ]
    floor = values.get("envoy_ceiling_added_p99")
    if floor is not None:
        lines.append(
            f"Envoy + the bare grpc.aio server adds {floor['added_ms']:.2f} ms at "
            f"{floor['rate']:,} rps ({floor['envoy_ms']:.2f} -> {floor['envoy_authz_ms']:.2f} ms): "
            "the floor for a Python ext_authz"
        )
    if not values["authz_vs_cerbos_p99"]:
        lines.append("authz vs Cerbos: no common rate measured")
    for pair in values["authz_vs_cerbos_p99"]:
        lines.append(
            f"our p99 vs Cerbos's at {pair['rate']:,} rps: {pair['authz_ms']:.2f} vs "
            f"{pair['cerbos_ms']:.2f} ms ({pair['ratio']:.2f}x)"
        )
    return lines


def plot(report: dict[str, Any], path: Path) -> None:
    """p99 latency (log scale) against offered rate, one line per setup that ran."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=120)
    rates: set[int] = set()
    for name in report["setups"]:
        points = sorted(_p99_at(report, name).items())
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=name)
            rates.update(rate for rate, _ in points)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(sorted(rates))
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("offered rate (requests/s, open loop)")
    axes.set_ylabel("p99 latency (ms)")
    machine = report["machine"]
    axes.set_title(
        f"p99 vs offered rate, {report['started'][:10]}: "
        f"{machine['cpu_model']}, {machine['cpu_count']} CPUs"
    )
    axes.grid(True, which="both", alpha=0.3)
    if rates:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
