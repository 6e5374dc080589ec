"""``python -m bench.reload``: how fast a policy change reaches decisions, and what reloads cost.

Against ``python -m authz serve`` (a child process, one process, otherwise default
settings: the bundle directory watched, 200 ms debounce), for a scratch copy of the
example bundle and the generated bundle of N tenants x 10 rules (:mod:`bench.bundles`):

1. **Propagation**: a file of the bundle is changed (written beside it, then
   renamed over it, as editors and kubelet do), and Check is called in a tight
   loop until a decision carries a new ``policy_version``; the time from the
   write to that first decision, over many updates.
2. **Under load**: client workers call Check back to back (an allowed request
   that must stay allowed) for a while without reloads, then as long while the
   bundle is changed every few seconds; interleaved in rounds. Failures (RPC
   errors, or a decision that is not OK) and latency percentiles per phase.
3. **Loading** the generated bundle in this process (``load_bundle``), and the
   server's memory after its reloads (each version of the history is kept).

The client shares the machine's cores with the server: latencies are for
comparing the two phases of one run, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from authz.policy.bundle import load_bundle
from bench import bundles
from dev.authz_server import ONE_PROCESS, AuthzServer
from dev.ports import free_port

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Settings:
    """What to run; validated on construction."""

    updates: int = 50  # propagation samples, example bundle
    large_updates: int = 5  # propagation samples, generated bundle
    seconds: float = 10.0  # per phase and round
    rounds: int = 2
    clients: int = 4
    interval: float = 0.5  # between changes under load, example bundle
    large_interval: float = 4.0  # the generated bundle takes seconds to load
    tenants: int = 1_000

    def __post_init__(self) -> None:
        for name in ("updates", "large_updates", "rounds", "clients", "tenants"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if min(self.seconds, self.interval, self.large_interval) <= 0:
            raise ValueError("seconds and intervals must be positive")


@dataclass(frozen=True, slots=True)
class Target:
    """A bundle, the file the benchmark changes, and an allowed request for it."""

    name: str
    root: Path
    changed: str  # relative path
    request: Any  # CheckRequest


class Changer:
    """Changes one file of a bundle by appending a numbered comment, atomically."""

    def __init__(self, target: Target) -> None:
        self.path = target.root / target.changed
        self.original = self.path.read_bytes()
        self.count = 0

    def change(self) -> None:
        self.count += 1
        scratch = self.path.with_name(f".{self.path.name}.bench")
        scratch.write_bytes(self.original + f"\n# bench change {self.count}\n".encode())
        os.replace(scratch, self.path)


def _targets(scratch: Path, tenants: int) -> tuple[Target, Target]:
    now = time.time()
    example_root = scratch / "example"
    bundles.copy_example(ROOT / "policies", example_root, scratch / "example.pem")
    example_probe = bundles.vendor_staff(bundles.Minter(scratch / "example.pem", now), "acme")
    names = bundles.tenant_names(tenants)
    large_root = scratch / "tenants"
    bundles.write_tenant_bundle(large_root, scratch / "tenants.pem", names)
    large_probe = bundles.vendor_staff(bundles.Minter(scratch / "tenants.pem", now), names[0])
    label = f"{tenants} tenants x {bundles.RULES_PER_TENANT} rules"
    return (
        Target("example bundle", example_root, "platform/health.yaml", example_probe.message),
        Target(label, large_root, "tenancy.yaml", large_probe.message),
    )


@contextmanager
def _serving(target: Target, log: Path) -> Iterator[AuthzServer]:
    with log.open("wb") as stderr:
        server = AuthzServer(target.root, free_port(), stderr=stderr, options=ONE_PROCESS)
        server.start()
        try:
            server.wait_serving(timeout_s=120)
            _check(server, target.request)  # must be allowed before anything is timed
            yield server
        finally:
            server.stop()


def _check(server: AuthzServer, request: Any) -> str:
    with grpc.insecure_channel(server.target) as channel:
        response = external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=10)
    if response.status.code != 0:
        raise RuntimeError(f"{server.target}: the benchmark request is not allowed")
    version: str = response.dynamic_metadata.fields["policy_version"].string_value
    return version


def propagation(server: AuthzServer, target: Target, updates: int) -> list[float]:
    """Seconds from each file write to the first decision carrying a new version."""
    changer = Changer(target)
    samples = []
    with grpc.insecure_channel(server.target) as channel:
        check = external_auth_pb2_grpc.AuthorizationStub(channel).Check
        previous = _version(check(target.request, timeout=10))
        for _ in range(updates):
            started = time.perf_counter()
            changer.change()
            while (seen := _version(check(target.request, timeout=10))) == previous:
                if time.perf_counter() - started > 60:
                    raise RuntimeError("no new version within 60 s of a change")
            samples.append(time.perf_counter() - started)
            previous = seen
            time.sleep(0.05)
    return samples


def _version(response: Any) -> str:
    version: str = response.dynamic_metadata.fields["policy_version"].string_value
    return version


@dataclass(slots=True)
class Phase:
    """One phase's calls: latencies (ns), failures by kind, versions that decided."""

    latencies: array[int]
    failures: Counter[str]
    versions: set[str]
    changes: int = 0
    seconds: float = 0.0


async def _phase(
    server: AuthzServer, target: Target, settings: Settings, interval: float | None, into: Phase
) -> None:
    """Clients calling Check for ``settings.seconds``; every ``interval`` s a change."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.seconds
    changer = Changer(target) if interval else None
    async with grpc.aio.insecure_channel(server.target) as channel:
        check = external_auth_pb2_grpc.AuthorizationStub(channel).Check

        async def client() -> None:
            while loop.time() < deadline:
                started = time.perf_counter_ns()
                try:
                    response = await check(target.request, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    into.failures[exc.code().name] += 1
                    continue
                into.latencies.append(time.perf_counter_ns() - started)
                if response.status.code != 0:
                    into.failures["not allowed"] += 1
                into.versions.add(_version(response))

        async def changes() -> None:
            while changer is not None and interval and loop.time() + interval < deadline:
                await asyncio.sleep(interval)
                changer.change()
                into.changes += 1

        began = loop.time()
        await asyncio.gather(changes(), *(client() for _ in range(settings.clients)))
        into.seconds += loop.time() - began
    if changer is not None:  # leave the file as it was found, for the next phase
        changer.path.write_bytes(changer.original)


def under_load(
    server: AuthzServer, target: Target, settings: Settings, interval: float
) -> dict[str, Phase]:
    """The steady and reloading phases, interleaved over ``settings.rounds`` rounds."""
    phases = {name: Phase(array("q"), Counter(), set()) for name in ("steady", "reloading")}
    original = _check(server, target.request)
    for _ in range(settings.rounds):
        asyncio.run(_phase(server, target, settings, None, phases["steady"]))
        asyncio.run(_phase(server, target, settings, interval, phases["reloading"]))
        _settled(server, target, original)
    return phases


def _settled(server: AuthzServer, target: Target, version: str) -> None:
    """Wait until the server decides with ``version`` again, and has finished reloading."""
    deadline = time.monotonic() + 120
    while _check(server, target.request) != version:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not return to {version}")
        time.sleep(0.1)
    time.sleep(1.0)  # a reload requested meanwhile finds nothing new, but still costs a load


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _seconds(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:.0f} ms, "
        f"p99 {_percentile(values, 0.99) * 1000:.0f} ms, "
        f"min {min(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms (n={len(values)})"
    )


def _phase_line(name: str, phase: Phase) -> str:
    latencies = [value / 1e6 for value in phase.latencies]
    if not latencies:
        return f"  {name:<9}  no successful call"
    failures = sum(phase.failures.values())
    detail = f" ({dict(phase.failures)})" if failures else ""
    return (
        f"  {name:<9}  {len(latencies) / phase.seconds:6.0f} calls/s  "
        f"p50 {_percentile(latencies, 0.5):.2f} ms  p99 {_percentile(latencies, 0.99):.2f} ms  "
        f"max {max(latencies):.1f} ms  failures {failures}{detail}  "
        f"changes {phase.changes}, versions seen {len(phase.versions)}"
    )


def _reload_failures(log: Path) -> int:
    return sum("reload of" in line and "failed" in line for line in log.read_text().splitlines())


def run(settings: Settings, scratch: Path) -> Iterator[str]:
    """Every measurement; the report's lines, as they are measured."""
    example, large = _targets(scratch, settings.tenants)
    yield (
        f"bench.reload: {settings.clients} client(s), phases of {settings.seconds:g} s "
        f"x {settings.rounds} round(s), Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)"
    )
    for target, updates, interval in (
        (example, settings.updates, settings.interval),
        (large, settings.large_updates, settings.large_interval),
    ):
        log = scratch / f"{target.root.name}.log"
        yield f"\n{target.name} ({len(load_bundle(target.root).files)} files)"
        if target is large:
            loads = []
            for _ in range(3):
                started = time.perf_counter()
                snapshot = load_bundle(target.root)
                loads.append(time.perf_counter() - started)
            rules = len(snapshot.rules.rules)
            yield f"  load_bundle in process ({rules} rules): {_seconds(loads)}"
        with _serving(target, log) as server:
            assert server.process is not None
            rss_start = _rss_mib(server.process.pid)
            samples = propagation(server, target, updates)
            yield f"  write -> first new decision: {_seconds(samples)}"
            for name, phase in under_load(server, target, settings, interval).items():
                yield _phase_line(name, phase)
            rss_end = _rss_mib(server.process.pid)
        yield (
            f"  server memory: {rss_start:.0f} MiB after start, {rss_end:.0f} MiB after the "
            f"reloads; reloads that failed: {_reload_failures(log)}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.reload", description=__doc__)
    defaults = Settings()
    for name in Settings.__dataclass_fields__:
        value = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = Settings(**{name: getattr(args, name) for name in Settings.__dataclass_fields__})
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as scratch:
        for line in run(settings, Path(scratch)):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
