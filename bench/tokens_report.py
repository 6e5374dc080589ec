"""Rendering ``python -m bench.tokens`` reports as a text table."""

from __future__ import annotations

from typing import Any

from bench.tables import quietness, table, us

__all__ = ["ALGORITHMS", "NOOP", "PATHS", "render"]

ALGORITHMS = ("RS256", "ES256", "EdDSA")
PATHS = ("hit", "miss")
NOOP = "noop"
_LABELS = {"hit": "hit (cached)", "miss": "miss (verified)"}


def render(report: dict[str, Any]) -> str:
    """The report as text."""
    return "\n\n".join(("\n".join(_header(report)), "\n".join(_latency_table(report))))


def _header(report: dict[str, Any]) -> list[str]:
    m, s = report["machine"], report["settings"]
    return [
        "authz token verification benchmark (python -m bench.tokens)",
        f"machine   {m['cpu_count']} CPUs ({m['cpus_usable']} usable), {m['cpu_model']}",
        f"          {m['platform']}",
        f"python    {m['python']}, PyJWT {m['pyjwt']}, cryptography {m['cryptography']} "
        f"({m['openssl']}), gc {'on' if m['gc_enabled'] else 'off'}, "
        f"timer overhead {m['timer_overhead_ns']} ns",
        f"settings  {s['iterations']} timed calls per series after {s['warmup']} warm-up, "
        f"{s['rounds']} interleaved rounds; {s['pool']} distinct tokens per algorithm; "
        "one thread, one core",
        f"timing    {quietness(report['conditions'])}",
    ]


def _latency_table(report: dict[str, Any]) -> list[str]:
    rows = []
    for alg, result in report["algorithms"].items():
        for path in PATHS:
            first = [alg, str(result["token_bytes"])] if path == PATHS[0] else ["", ""]
            rows.append([*first, _LABELS[path], *us(result[path], "median", "p90", "p99", "max")])
        ratio = result["miss_over_hit"]
        rows.append(["", "", "miss / hit", f"{ratio['median']:.1f}x", "", f"{ratio['p99']:.1f}x"])
        rows[-1].append("")
    floor = us(report[NOOP], "median", "p90", "p99", "max")
    rows.append(["floor", "", "no-op call", *floor])
    header = ["alg", "token bytes", "path", "median", "p90", "p99", "max"]
    return [
        "TokenVerifier.verify per call, µs (baseline: the hit path of the same algorithm)",
        *table("<><>>>>", header, rows),
    ]
