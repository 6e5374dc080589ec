"""``bench/load``: our Check over gRPC under h2load, next to a do-nothing gRPC ceiling.

1. A scratch copy of ``policies/`` trusts a fresh key; one token is minted for an
   allowed request (acme vendor staff reading acme's orders).
2. Our server (``python -m authz serve``) gets one real gRPC call, which must come back
   as an OK CheckResponse, then a warm-up and the measured h2load run.
3. The same against :mod:`bench.load_ceiling` (prebuilt OK, request never read).

The servers run one after the other, so they never compete for CPU with each other
(h2load does share the machine with whichever is running). Every measured response
must be HTTP 200 carrying one gRPC message of exactly the sample call's size: a deny
is larger, and a gRPC error arrives trailers-only, without data.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.loops import DEFAULT_LOOP
from bench.load_h2load import H2loadError, LoadResult, LoadSpec, ensure_h2load, run
from bench.load_request import CHECK_METHOD, check_request, frame
from dev.authz_server import ONE_PROCESS, AuthzServer, AuthzServerError, health_status
from dev.bundle import BundleError, prepare
from dev.ports import LOOPBACK, free_port

__all__ = ["LoadError", "ceiling_server", "main", "sample_call"]

ROOT = Path(__file__).resolve().parent.parent
HOST = "api.shop.example.com"
PATH = "/api/v1/vendors/acme/orders"


class LoadError(RuntimeError):
    """A server did not answer OK, or the load run did not succeed."""


@dataclass(frozen=True, slots=True)
class Target:
    """A server under test: its name, port and the size of one OK response message."""

    name: str
    port: int
    response_bytes: int


def sample_call(port: int, request: bytes) -> int:
    """One real Check; returns the serialized response size, raises unless it is OK."""
    with grpc.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        call: Callable[..., bytes] = channel.unary_unary(CHECK_METHOD)
        raw = call(request, timeout=5)
    response = external_auth_pb2.CheckResponse.FromString(raw)
    if response.status.code != 0 or not response.HasField("ok_response"):
        reason = response.dynamic_metadata.fields.get("reason")
        shown = reason.string_value if reason is not None else "?"
        raise LoadError(f"sample Check was not OK: code {response.status.code}, reason {shown}")
    return len(raw)


def _measure(
    h2load: str, target: Target, body: Path, spec: LoadSpec, warmup_s: float, work: Path
) -> LoadResult:
    url = f"http://{LOOPBACK}:{target.port}{CHECK_METHOD}"
    if warmup_s > 0:
        warm = LoadSpec(warmup_s, None, spec.clients, spec.streams, spec.threads)
        run(h2load, url, body, warm, work / f"h2load-{target.name}-warmup.tsv")
    result = run(h2load, url, body, spec, work / f"h2load-{target.name}.tsv")
    expected = result.done * (5 + target.response_bytes)
    if result.failed or result.status_2xx != result.done or result.done == 0:
        raise LoadError(f"{target.name}: {result.failed} failed, {result.status_2xx} 2xx")
    # Every OK answer to this request has the sample's size (its ids are fixed-length),
    # so a single deny or trailers-only gRPC error changes the total.
    if result.data_bytes != expected:
        raise LoadError(
            f"{target.name}: {result.data_bytes} bytes of gRPC data for {result.done} calls, "
            f"expected {expected}: some calls did not return an OK response of the sample's size"
        )
    return result


@contextmanager
def _ours(work: Path) -> Iterator[tuple[int, bytes]]:
    bundle = prepare(ROOT / "policies", work / "bundle", work / "bench-key.pem")
    token = bundle.token("alice", roles=("vendor:staff",), tenant="acme")
    request = check_request(HOST, PATH, token).SerializeToString()
    with (work / "authz-server.log").open("ab") as log:
        server = AuthzServer(bundle.path, free_port(), stderr=log, options=ONE_PROCESS)
        server.start()
        try:
            server.wait_serving()
            yield server.port, request
        finally:
            server.stop()


@contextmanager
def ceiling_server(work: Path, loop: str = DEFAULT_LOOP) -> Iterator[int]:
    """Run :mod:`bench.load_ceiling` until the block ends; yields its port once SERVING.

    Its event loop is ``authz serve``'s default unless told: the same loop on both
    sides, so the ratio between them is our work, not the loop's.
    """
    port = free_port()
    argv = [sys.executable, "-m", "bench.load_ceiling", "--listen", f"{LOOPBACK}:{port}"]
    argv += ["--loop", loop]
    with (work / "ceiling-server.log").open("ab") as log:
        process = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while health_status(f"{LOOPBACK}:{port}") != "SERVING":
                if process.poll() is not None or time.monotonic() > deadline:
                    raise LoadError("ceiling server did not start")
                time.sleep(0.1)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def _report(spec: LoadSpec, ours: LoadResult, ceiling: LoadResult) -> str:
    how = f"{spec.duration_s:g}s" if spec.duration_s is not None else f"{spec.requests} req"
    rows = [
        f"load: {how}, {spec.clients} clients x {spec.streams} streams, {spec.threads} thread(s)",
        f"{'server':<10} {'calls':>9} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for name, result in (("authz", ours), ("ceiling", ceiling)):
        rows.append(
            f"{name:<10} {result.done:>9} {result.rps:>10.1f} "
            f"{result.p50_ms:>8.2f} {result.p99_ms:>8.2f}"
        )
    rows.append(
        f"ours/ceiling: throughput {ours.rps / ceiling.rps:.2f}x, "
        f"p50 {ours.p50_ms / ceiling.p50_ms:.2f}x, p99 {ours.p99_ms / ceiling.p99_ms:.2f}x"
    )
    return "\n".join(rows)


def _parse_args(argv: list[str] | None) -> tuple[LoadSpec, float, Path | None]:
    parser = argparse.ArgumentParser(prog="bench/load", description=__doc__.split("\n\n")[0])
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("-D", "--duration", type=float, help="seconds per run (default 10)")
    amount.add_argument("-n", "--requests", type=int, help="requests per run instead")
    parser.add_argument("-c", "--clients", type=int, default=8, help="connections (8)")
    parser.add_argument("-m", "--streams", type=int, default=4, help="streams each (4)")
    parser.add_argument("-t", "--threads", type=int, default=1, help="h2load threads (1)")
    parser.add_argument("-w", "--warm-up", type=float, default=2.0, help="seconds (2)")
    parser.add_argument("--keep", type=Path, help="keep logs and h2load files in this dir")
    args = parser.parse_args(argv)
    duration = args.duration if args.duration or args.requests else 10.0
    try:
        spec = LoadSpec(duration, args.requests, args.clients, args.streams, args.threads)
    except ValueError as exc:
        parser.error(str(exc))
    return spec, args.warm_up, args.keep


def _bench(spec: LoadSpec, warmup_s: float, work: Path) -> str:
    h2load = ensure_h2load()
    body = work / "check-request.grpc"
    with _ours(work) as (port, request):
        body.write_bytes(frame(request))
        target = Target("authz", port, sample_call(port, request))
        ours = _measure(h2load, target, body, spec, warmup_s, work)
    with ceiling_server(work) as port:
        target = Target("ceiling", port, sample_call(port, request))
        ceiling = _measure(h2load, target, body, spec, warmup_s, work)
    return _report(spec, ours, ceiling)


def main(argv: list[str] | None = None) -> int:
    """Run both loads and print the comparison; non-zero if anything did not succeed."""
    spec, warmup_s, keep = _parse_args(argv)
    try:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            print(_bench(spec, warmup_s, keep))
        else:
            with tempfile.TemporaryDirectory(prefix="authz-load-") as work:
                print(_bench(spec, warmup_s, Path(work)))
    except (LoadError, H2loadError, AuthzServerError, BundleError, grpc.RpcError) as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 1
    return 0
