"""Interleaved h2load runs of several server variants: which setting is faster, and by how much.

``python -m bench.load_variants [options] VARIANT...`` where each VARIANT is
``LABEL=KIND [FLAGS...]`` (one shell word):

* ``KIND`` ``ceiling``: :mod:`bench.load_ceiling` with FLAGS (e.g. ``--loop uvloop``);
* ``KIND`` ``authz``: ``python -m authz serve`` on the bench bundle with FLAGS
  (e.g. ``--loop asyncio``, ``--workers 2``, ``--decision-cache 10000``: one request
  replayed, so after the first call every Check is a cache hit); ``authz@DIR`` runs the ``authz``
  package found in the source tree DIR instead, so that an older commit (a
  ``git worktree``) can be measured against the current one in the same run;
* ``KIND`` ``bench.MODULE``: ``python -m bench.MODULE serve`` like ``authz``, for a
  prototype that wraps the server's command line.

An ``authz`` variant serves from one process unless its FLAGS say ``--workers``:
its environment has ``AUTHZ_WORKERS=1`` (the default, ``auto``, would start one
worker per usable CPU; an older tree, ``authz@DIR``, ignores the variable).

Every round starts each variant afresh, warms it up and measures it, in the order
given, so slow drifts of a shared machine spread over all variants; each row
reports the median and range over rounds, and its throughput ratio to the first
variant in the same round. The request and the checks on every response are those
of :mod:`bench.load_run` (an OK response of the sample call's size, every time).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.load_h2load import H2loadError, LoadResult, LoadSpec, ensure_h2load
from bench.load_request import check_request, frame
from bench.load_run import HOST, PATH, ROOT, LoadError, Target, _measure, sample_call
from dev import processes
from dev.authz_server import health_status
from dev.bundle import BundleError, prepare
from dev.ports import LOOPBACK, free_port

__all__ = ["Variant", "main", "parse_variant"]


@dataclass(frozen=True, slots=True)
class Variant:
    """A server to measure: its label, kind (``ceiling``, ``authz``, ``bench.…``), source
    tree and flags."""

    label: str
    kind: str
    tree: Path
    flags: tuple[str, ...]


def parse_variant(text: str) -> Variant:
    """``LABEL=KIND[@DIR] [FLAGS...]`` as a :class:`Variant` (ValueError if malformed)."""
    label, _, rest = text.partition("=")
    words = shlex.split(rest)
    if not label or not words:
        raise ValueError(f"variant {text!r}: expected LABEL=KIND [FLAGS...]")
    kind, _, tree = words[0].partition("@")
    if not (kind in ("ceiling", "authz") or kind.startswith("bench.")) or (
        tree and kind != "authz"
    ):
        raise ValueError(f"variant {text!r}: KIND is ceiling, authz, authz@DIR or bench.MODULE")
    return Variant(label, kind, Path(tree).resolve() if tree else ROOT, tuple(words[1:]))


@contextmanager
def _serving(variant: Variant, bundle: Path, log: Path) -> Iterator[int]:
    """The variant's server, started on a free port and SERVING; stopped on exit."""
    port = free_port()
    listen = f"{LOOPBACK}:{port}"
    if variant.kind == "ceiling":
        argv = [sys.executable, "-m", "bench.load_ceiling", "--listen", listen]
    else:
        module = "authz" if variant.kind == "authz" else variant.kind
        argv = [sys.executable, "-m", module, "serve", "--policies", str(bundle)]
        argv += ["--listen", listen, "--no-watch"]
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [*argv, *variant.flags],
            cwd=variant.tree,
            env={**os.environ, "AUTHZ_WORKERS": "1"},  # one process unless FLAGS say otherwise
            stdin=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 30
            while health_status(listen) != "SERVING":
                if process.poll() is not None or time.monotonic() > deadline:
                    raise LoadError(f"{variant.label}: did not start (see {log})")
                time.sleep(0.1)
            yield port
        finally:
            processes.stop(process, 15)


def _round(
    variants: list[Variant], spec: LoadSpec, warmup_s: float, work: Path, request: bytes
) -> list[LoadResult]:
    h2load = ensure_h2load()
    body = work / "check-request.grpc"
    body.write_bytes(frame(request))
    results = []
    for variant in variants:
        with _serving(variant, work / "bundle", work / f"{variant.label}.log") as port:
            target = Target(variant.label, port, sample_call(port, request))
            results.append(_measure(h2load, target, body, spec, warmup_s, work))
    return results


def _span(values: list[float], fmt: str) -> str:
    """Median and [min-max] of ``values``."""
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def report(variants: list[Variant], rounds: list[list[LoadResult]]) -> str:
    """One row per variant: req/s, p50, p99 (ms) and throughput / first variant, per round."""
    rows = [f"{'variant':<18} {'req/s':>24} {'p50 ms':>20} {'p99 ms':>20} {'ratio':>20}"]
    for index, variant in enumerate(variants):
        results = [results[index] for results in rounds]
        ratios = [results[index].rps / results[0].rps for results in rounds]
        rows.append(
            f"{variant.label:<18} {_span([r.rps for r in results], '.0f'):>24} "
            f"{_span([r.p50_ms for r in results], '.2f'):>20} "
            f"{_span([r.p99_ms for r in results], '.2f'):>20} {_span(ratios, '.2f'):>20}"
        )
    return "\n".join(rows)


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[Variant], LoadSpec]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load_variants", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("variants", nargs="+", metavar="VARIANT")
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("-D", "--duration", type=float, default=5.0, help="seconds per run (5)")
    parser.add_argument("-c", "--clients", type=int, default=8, help="connections (8)")
    parser.add_argument("-m", "--streams", type=int, default=4, help="streams each (4)")
    parser.add_argument("-t", "--threads", type=int, default=1, help="h2load threads (1)")
    parser.add_argument("-w", "--warm-up", type=float, default=1.0, help="seconds (1)")
    parser.add_argument(
        "--rps", type=int, help="requests per second per connection (default: saturate)"
    )
    args = parser.parse_args(argv)
    try:
        variants = [parse_variant(text) for text in args.variants]
        spec = LoadSpec(args.duration, None, args.clients, args.streams, args.threads, args.rps)
    except ValueError as exc:
        parser.error(str(exc))
    return args, variants, spec


def main(argv: list[str] | None = None) -> int:
    """Measure every variant once per round; print the table. Non-zero on any failure."""
    args, variants, spec = _parse_args(argv)
    rounds: list[list[LoadResult]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="authz-variants-") as scratch:
            work = Path(scratch)
            bundle = prepare(ROOT / "policies", work / "bundle", work / "bench-key.pem")
            token = bundle.token("alice", roles=("vendor:staff",), tenant="acme")
            request = check_request(HOST, PATH, token).SerializeToString()
            for number in range(args.rounds):
                rounds.append(_round(variants, spec, args.warm_up, work, request))
                print(f"round {number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    except (LoadError, H2loadError, BundleError, grpc.RpcError) as exc:
        print(f"load_variants: {exc}", file=sys.stderr)
        return 1
    how = f"{spec.clients} connections x {spec.streams} streams, {spec.duration_s:g}s per run"
    if spec.rps is not None:
        how += f", {spec.rps} req/s per connection"
    print(f"{args.rounds} rounds, {how}; median [min-max]; ratio: throughput / first variant")
    print(report(variants, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
