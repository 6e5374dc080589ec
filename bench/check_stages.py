"""``python -m bench.check_stages``: where a Check's time goes under load, stage by stage.

In a tight loop our Check costs a few tens of µs; under load it costs several times
that, because gRPC, the event loop and the load generator evict the caches between
calls. So the stages are timed where they run: ``authz serve`` under h2load (closed
loop, 8 connections x 4 streams), each time with Check cut short after one more
stage, next to the bare grpc.aio ceiling (:mod:`bench.load_ceiling`), in interleaved
rounds, servers on one CPU and h2load on the other (:mod:`bench.compare.pinning`):

=============  ===================================================================
``ceiling``    the bare grpc.aio server: a prebuilt OK, the request never read
``server``     ``authz serve`` answering the same prebuilt OK: its own plumbing
``parse``      + the CheckRequest parsed
``attributes`` + the request attributes read from it (``from_check_request``)
``decide``     + the decision (``decide`` on the current snapshot), still a prebuilt OK
``check``      the real Check: + the response encoded, observers, everything
=============  ===================================================================

A stage's cost is the growth of the time per call (1 / throughput, one server on
one CPU) from the stage before. Run ``python -m bench.check_stages serve-stage
STAGE -- SERVE_ARGS`` to start one such server by hand.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from authz import server as authz_server
from authz._proto.envoy.service.auth.v3.external_auth_pb2 import CheckRequest as _CheckRequest
from authz.engine import decide
from authz.request import from_check_request
from bench.compare.load import Measured, Request, saturate
from bench.compare.pinning import Pinning, plan
from bench.load_ceiling import OK_RESPONSE
from bench.load_h2load import ensure_h2load
from bench.load_request import CHECK_METHOD, check_request, frame
from bench.load_run import LoadError, sample_call
from dev.authz_server import health_status
from dev.bundle import prepare
from dev.ports import LOOPBACK, free_port

__all__ = ["STAGES", "StageResult", "main", "measure", "render"]

ROOT = Path(__file__).resolve().parent.parent
HOST = "api.shop.example.com"
PATH = "/api/v1/vendors/acme/orders"
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")

Check = Callable[[Any, bytes, grpc.aio.ServicerContext[Any, Any]], Any]


async def _server(self: Any, payload: bytes, context: Any) -> bytes:
    return OK_RESPONSE


async def _parse(self: Any, payload: bytes, context: Any) -> bytes:
    _CheckRequest.FromString(payload)
    return OK_RESPONSE


async def _attributes(self: Any, payload: bytes, context: Any) -> bytes:
    from_check_request(_CheckRequest.FromString(payload))
    return OK_RESPONSE


async def _decide(self: Any, payload: bytes, context: Any) -> bytes:
    message = _CheckRequest.FromString(payload)
    decide(self.store.current, from_check_request(message), datetime.now(UTC))
    return OK_RESPONSE


#: The stages in order; None: not a cut-short ``authz serve``.
STAGES: dict[str, Check | None] = {
    "ceiling": None,
    "server": _server,
    "parse": _parse,
    "attributes": _attributes,
    "decide": _decide,
    "check": None,
}


def serve_stage(stage: str, serve_argv: list[str]) -> int:
    """``authz serve`` with Check cut short after ``stage`` (``check``: not cut)."""
    from authz.cli import main as authz_main

    cut = STAGES[stage]
    if cut is not None:
        authz_server.AuthorizationService.check = cut  # type: ignore[method-assign,assignment]
    return authz_main(["serve", *serve_argv])


@contextmanager
def _running(stage: str, bundle: Path, log: Path) -> Iterator[int]:
    port = free_port()
    listen = f"{LOOPBACK}:{port}"
    if stage == "ceiling":
        argv = [sys.executable, "-m", "bench.load_ceiling", "--listen", listen]
    else:
        argv = [sys.executable, "-m", "bench.check_stages", "serve-stage", stage, "--"]
        argv += ["--policies", str(bundle), "--listen", listen, "--workers", "1"]
    with log.open("ab") as err:
        process = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 30
            while health_status(listen) != "SERVING":
                if process.poll() is not None or time.monotonic() > deadline:
                    raise LoadError(f"{stage}: the server did not start (see {log})")
                time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=20)


class StageResult:
    """Every round of one stage."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.rounds: list[Measured] = []

    @property
    def rps(self) -> float:
        """Median throughput over the rounds."""
        return statistics.median(run.achieved_rps for run in self.rounds)

    @property
    def us_per_call(self) -> float:
        """Median time per call, µs (1 / throughput)."""
        return 1e6 / self.rps

    def to_json(self) -> dict[str, Any]:
        """The stage as plain JSON values."""
        return {
            "stage": self.stage,
            "rps": round(self.rps, 1),
            "us_per_call": round(self.us_per_call, 1),
            "rounds": [run.to_json() for run in self.rounds],
        }


def measure(
    stages: list[str],
    rounds: int,
    seconds: float,
    layout: Pinning,
    work: Path,
    warmup_s: float = 1.0,
) -> list[StageResult]:
    """``rounds`` interleaved rounds of a closed-loop run against every stage."""
    h2load = ensure_h2load()
    bundle = prepare(ROOT / "policies", work / "bundle", work / "bench-key.pem")
    token = bundle.token("alice", roles=("vendor:staff",), tenant="acme")
    message = check_request(HOST, PATH, token).SerializeToString()
    body = work / "check.grpc"
    body.write_bytes(frame(message))
    results = {stage: StageResult(stage) for stage in stages}
    layout.pin_servers()
    for _ in range(rounds):
        for stage in stages:
            with _running(stage, bundle.path, work / f"{stage}.log") as port:
                url = f"http://{LOOPBACK}:{port}{CHECK_METHOD}"
                request = Request(url, GRPC_HEADERS, body, 5 + sample_call(port, message))
                prefix, log = layout.load_prefix(), work / "h2load.tsv"
                if warmup_s > 0:
                    saturate(prefix, h2load, request, warmup_s, 8, 4, log)
                run = saturate(prefix, h2load, request, seconds, 8, 4, log)
                if run.errors or not run.payload_ok:
                    raise LoadError(f"{stage}: {run.errors} errors under load")
                results[stage].rounds.append(run)
    return list(results.values())


def render(results: list[StageResult]) -> str:
    """The table: throughput, time per call, and each stage's added cost."""
    ceiling = results[0].rps
    lines = [
        f"| stage | req/s | ratio to {results[0].stage} | µs per call | added by this stage |",
        "|---|---|---|---|---|",
    ]
    before = None
    for result in results:
        added = "" if before is None else f"{result.us_per_call - before:+.0f} µs"
        lines.append(
            f"| {result.stage} | {result.rps:,.0f} | {result.rps / ceiling:.2f} "
            f"| {result.us_per_call:.0f} | {added} |"
        )
        before = result.us_per_call
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the stages (or, with ``serve-stage``, run one cut-short server)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve-stage"]:
        if len(args) < 3 or args[1] not in STAGES or args[2] != "--":
            print("usage: python -m bench.check_stages serve-stage STAGE -- SERVE_ARGS")
            return 2
        return serve_stage(args[1], args[3:])
    parser = argparse.ArgumentParser(prog="python -m bench.check_stages", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (5)")
    parser.add_argument("--only", help="comma-separated stages (all, in order)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPUs")
    parsed = parser.parse_args(args)
    stages = list(STAGES) if parsed.only is None else parsed.only.split(",")
    if any(stage not in STAGES for stage in stages) or parsed.rounds < 1:
        parser.error(f"stages: choose from {', '.join(STAGES)}; rounds at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as scratch:
        layout = plan(not parsed.no_pin)
        results = measure(stages, parsed.rounds, parsed.duration, layout, Path(scratch))
    print(f"bench.check_stages: {parsed.rounds} round(s) of {parsed.duration:g} s, h2load 8x4")
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
