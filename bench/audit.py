"""``python -m bench.audit``: what the decision log costs Check under load.

The server (``python -m authz serve``, example bundle, an allowed request) runs
under h2load three ways, one after the other and interleaved over rounds: with
the decision log off, to a file (``--decision-log PATH``), and to stdout
(``--decision-log -``, stdout a file). Every measured call must come back OK
(see :mod:`bench.load_run`), and each logged run must have written one line per
call it answered. Throughput and p99 per mode, and the cost relative to off.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.load_h2load import LoadResult, LoadSpec, ensure_h2load
from bench.load_request import check_request, frame
from bench.load_run import HOST, PATH, ROOT, LoadError, Target, _measure, sample_call
from dev.authz_server import ONE_PROCESS, AuthzServer
from dev.bundle import prepare
from dev.ports import free_port

__all__ = ["main"]

MODES = ("off", "file", "stdout")


@contextmanager
def _server(bundle: Path, mode: str, work: Path, run: int) -> Iterator[tuple[AuthzServer, Path]]:
    log = work / f"decisions-{mode}-{run}.log"
    options: tuple[str, ...] = ONE_PROCESS
    if mode == "file":
        options += ("--decision-log", str(log))
    elif mode == "stdout":
        options += ("--decision-log", "-")
    with log.open("ab") as stdout, (work / "server.log").open("ab") as stderr:
        server = AuthzServer(bundle, free_port(), stderr=stderr, stdout=stdout, options=options)
        server.start()
        try:
            server.wait_serving()
            yield server, log
        finally:
            server.stop()


def _lines(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def run(spec: LoadSpec, rounds: int, warmup_s: float, work: Path) -> dict[str, list[LoadResult]]:
    """Each mode once per round; the results by mode."""
    h2load = ensure_h2load()
    bundle = prepare(ROOT / "policies", work / "bundle", work / "bench-key.pem")
    request = check_request(
        HOST, PATH, bundle.token("alice", roles=("vendor:staff",), tenant="acme")
    )
    body = work / "check-request.grpc"
    body.write_bytes(frame(request.SerializeToString()))
    results: dict[str, list[LoadResult]] = {mode: [] for mode in MODES}
    for number in range(rounds):
        for mode in MODES:
            with _server(bundle.path, mode, work, number) as (server, log):
                target = Target(
                    mode, server.port, sample_call(server.port, request.SerializeToString())
                )
                result = _measure(h2load, target, body, spec, warmup_s, work)
            results[mode].append(result)
            if mode != "off" and _lines(log) < result.done:
                raise LoadError(f"{mode}: {_lines(log)} lines for {result.done} calls")
    return results


def report(spec: LoadSpec, results: dict[str, list[LoadResult]]) -> str:
    """Median throughput and p99 per mode over the rounds, and the cost against off."""
    rows = [
        f"h2load {spec.duration_s:g}s x {len(results['off'])} rounds, "
        f"{spec.clients} clients x {spec.streams} streams",
        f"{'decision log':<14} {'req/s':>10} {'p99 ms':>8} {'throughput cost':>16}",
    ]
    base = statistics.median(r.rps for r in results["off"])
    for mode in MODES:
        rps = statistics.median(r.rps for r in results[mode])
        p99 = statistics.median(r.p99_ms for r in results[mode])
        cost = "" if mode == "off" else f"{(base - rps) / base:>15.1%}"
        rows.append(f"{mode:<14} {rps:>10.1f} {p99:>8.2f} {cost:>16}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("-D", "--duration", type=float, default=10.0, help="seconds per run (10)")
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("-c", "--clients", type=int, default=8, help="connections (8)")
    parser.add_argument("-m", "--streams", type=int, default=4, help="streams each (4)")
    parser.add_argument("-w", "--warm-up", type=float, default=2.0, help="seconds (2)")
    args = parser.parse_args(argv)
    spec = LoadSpec(args.duration, None, args.clients, args.streams, 1)
    with tempfile.TemporaryDirectory(prefix="authz-bench-audit-") as scratch:
        try:
            results = run(spec, args.rounds, args.warm_up, Path(scratch))
        except LoadError as exc:
            print(f"bench.audit: {exc}", file=sys.stderr)
            return 1
    print(report(spec, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
