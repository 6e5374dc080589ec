"""``python -m bench.startup``: cold start to SERVING, and memory, by bundle size.

For a scratch copy of the example bundle and the generated bundle of N tenants x
10 rules (:mod:`bench.bundles`), ``python -m authz serve --workers 1`` is started
as a child process, again and again, the two bundles taking turns; each start is
timed from just before the process is spawned to the first health check that
answers SERVING (polled every 5 ms), which is when the bundle is loaded, compiled
and the port answers. Then one real Check must come back allowed, and the
server's resident memory is read from ``/proc``: ``VmRSS`` now and ``VmHWM``, its
peak so far (loading builds more than it keeps).

Every start pays for the interpreter and the imports too; the example bundle's
start is that fixed cost plus almost nothing, so the difference between the two
is what a large bundle adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from bench.bundles import Minter, copy_example, tenant_names, vendor_staff
from bench.bundles import write_tenant_bundle as write_generated
from bench.timing import machine
from dev.authz_server import health_status
from dev.ports import LOOPBACK, free_port

__all__ = ["Bundle", "Start", "StartupError", "main", "measure", "start_once"]

ROOT = Path(__file__).resolve().parent.parent
CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"
POLL_S = 0.005
TIMEOUT_S = 60.0


class StartupError(RuntimeError):
    """A server did not reach SERVING, or did not allow the probe request."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """A bundle to start on, and an allowed request for it."""

    label: str
    root: Path
    rules: int
    request: bytes


@dataclass(frozen=True, slots=True)
class Start:
    """One measured start."""

    seconds: float
    rss_mib: float
    peak_mib: float


@dataclass
class Series:
    """Every start of one bundle."""

    bundle: Bundle
    starts: list[Start] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians and ranges, for the report and the JSON file."""

        def of(read: Callable[[Start], float]) -> dict[str, float]:
            values = [read(start) for start in self.starts]
            return {
                "median": round(statistics.median(values), 3),
                "min": round(min(values), 3),
                "max": round(max(values), 3),
            }

        return {
            "bundle": self.bundle.label,
            "rules": self.bundle.rules,
            "starts": len(self.starts),
            "to_serving_s": of(lambda start: start.seconds),
            "rss_mib": of(lambda start: start.rss_mib),
            "peak_mib": of(lambda start: start.peak_mib),
        }


def _memory_mib(pid: int) -> tuple[float, float]:
    """``VmRSS`` and ``VmHWM`` of process ``pid``, in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _allowed(port: int, request: bytes) -> bool:
    with grpc.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        call: Callable[..., bytes] = channel.unary_unary(CHECK_METHOD)
        response = external_auth_pb2.CheckResponse.FromString(call(request, timeout=10))
    return response.status.code == 0 and response.HasField("ok_response")


@contextmanager
def _serving(bundle: Bundle, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], float, int]]:
    """Start a server on ``bundle``; yields it, its seconds to SERVING and its port."""
    port = free_port()
    argv = [sys.executable, "-m", "authz", "serve", "--policies", str(bundle.root)]
    argv += ["--listen", f"{LOOPBACK}:{port}", "--workers", "1"]
    target = f"{LOOPBACK}:{port}"
    with log.open("ab") as err:
        began = time.perf_counter()
        process = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=err)
        try:
            while health_status(target, timeout_s=1.0) != "SERVING":
                if process.poll() is not None:
                    raise StartupError(f"{bundle.label}: the server exited ({process.returncode})")
                if time.perf_counter() - began > TIMEOUT_S:
                    raise StartupError(f"{bundle.label}: not SERVING after {TIMEOUT_S:g} s")
                time.sleep(POLL_S)
            yield process, time.perf_counter() - began, port
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_once(bundle: Bundle, log: Path) -> Start:
    """Start a server on ``bundle``, check it allows the probe, read its memory, stop it."""
    with _serving(bundle, log) as (process, seconds, port):
        if not _allowed(port, bundle.request):
            raise StartupError(f"{bundle.label}: the probe request was not allowed")
        rss, peak = _memory_mib(process.pid)
    return Start(seconds, rss, peak)


def prepare(scratch: Path, tenants: int) -> tuple[Bundle, Bundle]:
    """The example bundle and the generated one, each with an allowed request."""
    example, generated = scratch / "example", scratch / "generated"
    copy_example(ROOT / "policies", example, scratch / "example-key.pem")
    names = tenant_names(tenants)
    write_generated(generated, scratch / "generated-key.pem", names)
    bundles = []
    for label, root, key, tenant in (
        ("example bundle", example, scratch / "example-key.pem", "acme"),
        (f"{tenants:,} tenants x 10 rules", generated, scratch / "generated-key.pem", names[-1]),
    ):
        request = vendor_staff(Minter(key, time.time()), tenant).message.SerializeToString()
        bundles.append(Bundle(label, root, _rules(root), request))
    return bundles[0], bundles[1]


def _rules(root: Path) -> int:
    from authz.policy.bundle import load_bundle

    return len(load_bundle(root).rules.rules)


def measure(bundles: tuple[Bundle, ...], rounds: int, scratch: Path) -> list[Series]:
    """``rounds`` starts of each bundle, the bundles taking turns in every round."""
    series = [Series(bundle) for bundle in bundles]
    for _ in range(rounds):
        for entry in series:
            entry.starts.append(start_once(entry.bundle, scratch / "server.log"))
    return series


def render(summaries: list[dict[str, Any]]) -> str:
    """The report table: medians with [min-max], and the large bundle over the example."""
    lines = [
        "| bundle | rules | to SERVING | RSS when serving | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for row in summaries:
        start, rss, peak = row["to_serving_s"], row["rss_mib"], row["peak_mib"]
        lines.append(
            f"| {row['bundle']} | {row['rules']:,} "
            f"| {start['median']:.2f} s [{start['min']:.2f}-{start['max']:.2f}] "
            f"| {rss['median']:.0f} MiB [{rss['min']:.0f}-{rss['max']:.0f}] "
            f"| {peak['median']:.0f} MiB [{peak['min']:.0f}-{peak['max']:.0f}] |"
        )
    if len(summaries) == 2:
        small, large = summaries
        added = large["to_serving_s"]["median"] - small["to_serving_s"]["median"]
        grown = large["rss_mib"]["median"] - small["rss_mib"]["median"]
        lines.append(
            f"\nThe large bundle adds {added:.2f} s to a start and {grown:.0f} MiB "
            f"to the memory of a serving process (medians of {small['starts']} starts each)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000, help="generated tenants (1000)")
    parser.add_argument("--rounds", type=int, default=5, help="starts of each bundle (5)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.tenants < 2 or args.rounds < 1:
        parser.error("--tenants must be at least 2 and --rounds at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        bundles = prepare(Path(scratch), args.tenants)
        summaries = [entry.summary() for entry in measure(bundles, args.rounds, Path(scratch))]
    print(f"bench.startup: {args.rounds} start(s) per bundle, {os.cpu_count()} CPU(s)")
    print(render(summaries))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "series": summaries}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
