"""Running the comparison: every chosen setup under the same load, interleaved.

All setups are started first and left idle until their turn, then warmed up. Round
after round, each setup is measured at saturation (closed loop); then, round after
round, each fixed rate is offered in open loop to every setup in turn before the
next rate. On a shared, noisy machine, setups measured seconds apart see the same
background, and every row is the median of its rounds, so one burst of background
work does not decide it. Every setup has answered one sample request as allowed
before any load.

A rate more than :data:`SATURATION_MARGIN` above a setup's best saturation round is
skipped and says so: past saturation an open-loop queue grows for the whole run and
h2load ends up at its in-flight cap, where it stops being open loop. A setup that
cannot start (Cerbos without npm, say) is recorded as skipped with the reason; one
that fails under load is recorded as failed and drops out; the others go on.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench.compare import cerbos
from bench.compare.load import Measured, OpenLoopPlan, combined, open_loop, saturate
from bench.compare.pinning import Pinning
from bench.compare.setups import HOST, PATH, SETUPS, Target, Workload
from bench.load_h2load import H2loadError
from bench.load_request import check_request
from bench.load_run import LoadError
from bench.timing import cpu_model
from dev.authz_server import AuthzServerError
from dev.bundle import BundleError, prepare
from dev.envoy import EnvoyError, envoy_binary

__all__ = ["Settings", "run"]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RATES = (250, 500, 1000, 2000, 4000)
# Rates up to this much above a setup's saturation throughput still run (saturation
# is one closed-loop run on a noisy machine); rates beyond it are skipped.
SATURATION_MARGIN = 1.2

# A setup that hits one of these is recorded as skipped (could not start) or failed.
_SETUP_ERRORS = (
    LoadError,
    H2loadError,
    AuthzServerError,
    EnvoyError,
    cerbos.CerbosError,
    grpc.RpcError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class Settings:
    """What to run and how hard; validated on construction."""

    setups: tuple[str, ...] = tuple(SETUPS)
    rates: tuple[int, ...] = DEFAULT_RATES
    rounds: int = 3
    duration_s: float = 5.0
    saturation_s: float = 5.0
    warmup_s: float = 2.0
    clients: int = 8
    streams: int = 4
    cerbos_cache: Path = field(default_factory=lambda: Path.home() / ".cache/authz-bench/cerbos")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.setups) - set(SETUPS))
        if unknown or not self.setups:
            raise ValueError(f"setups: unknown {unknown}; choose from {', '.join(SETUPS)}")
        if not self.rates or any(rate < 1 for rate in self.rates):
            raise ValueError("rates: give positive numbers of requests per second")
        if min(self.duration_s, self.saturation_s) <= 0 or self.warmup_s < 0:
            raise ValueError("durations must be positive (warm-up may be 0)")
        if min(self.clients, self.streams, self.rounds) < 1:
            raise ValueError("clients, streams and rounds must be at least 1")

    def to_json(self) -> dict[str, Any]:
        """The settings for the results file."""
        return {
            "setups": list(self.setups),
            "rates": list(self.rates),
            "rounds": self.rounds,
            "duration_s": self.duration_s,
            "saturation_s": self.saturation_s,
            "warmup_s": self.warmup_s,
            "saturation_load": {"clients": self.clients, "streams": self.streams},
        }


def _version(argv: list[str]) -> str:
    """The first line a ``--version`` prints."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def machine(h2load: str) -> dict[str, Any]:
    """CPU, cores, load and the versions of everything measured."""
    envoy = _version([envoy_binary(), "--version"]).rsplit("version: ", 1)[-1]
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "grpcio": importlib.metadata.version("grpcio"),
        "protobuf": importlib.metadata.version("protobuf"),
        "envoy": envoy.split("/")[1] if "/" in envoy else envoy,
        "envoy_build": envoy,
        "h2load": _version([h2load, "--version"]),
    }


def workload(work: Path, cerbos_cache: Path, envoy_cpus: frozenset[int] | None = None) -> Workload:
    """A scratch bundle trusting a fresh key, a vendor-staff token and its CheckRequest."""
    bundle = prepare(ROOT / "policies", work / "bundle", work / "bench-key.pem")
    token = bundle.token("alice", roles=("vendor:staff",), tenant="acme")
    request = check_request(HOST, PATH, token).SerializeToString()
    return Workload(bundle, token, request, work, cerbos_cache, envoy_cpus)


@dataclass(slots=True)
class _Runner:
    """Runs interleaved: every setup at one load, then every setup at the next."""

    settings: Settings
    h2load: str
    pinning: Pinning
    work: Path
    say: Callable[[str], None]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    rounds: dict[tuple[str, int], list[Measured]] = field(default_factory=dict)
    saturations: dict[str, list[Measured]] = field(default_factory=dict)

    def start(self, stack: ExitStack, load: Workload) -> None:
        """Start every setup (left idle until its turn); record those that cannot start."""
        for name in self.settings.setups:
            entry = self.entries[name] = {"description": SETUPS[name].description}
            try:
                self.targets[name] = stack.enter_context(SETUPS[name].start(load))
            except _SETUP_ERRORS as exc:
                self.say(f"{name}: skipped: {exc}")
                entry.update(status="skipped", reason=str(exc))
            else:
                entry.update(status="ok", versions=self.targets[name].versions)

    def each(self, what: str, measure: Callable[[str, Target], None]) -> None:
        """``measure`` every setup still running; a setup that fails drops out."""
        for name, target in list(self.targets.items()):
            try:
                measure(name, target)
            except _SETUP_ERRORS as exc:
                self.say(f"{name}: failed at {what}: {exc}")
                self.entries[name].update(status="failed", reason=f"{what}: {exc}")
                del self.targets[name]

    def _closed_loop(self, name: str, target: Target, duration_s: float) -> Measured:
        s = self.settings
        log = self.work / f"h2load-{name}.tsv"
        prefix = self.pinning.load_prefix()
        return saturate(prefix, self.h2load, target.request, duration_s, s.clients, s.streams, log)

    def warm_up(self, name: str, target: Target) -> None:
        if self.settings.warmup_s > 0:
            self._closed_loop(name, target, self.settings.warmup_s)

    def saturation(self, name: str, target: Target) -> None:
        top = self._closed_loop(name, target, self.settings.saturation_s)
        self.say(f"{name}: saturation {top.achieved_rps:,.0f} req/s")
        self.saturations.setdefault(name, []).append(top)

    def rate(self, rate: int) -> Callable[[str, Target], None]:
        plan = OpenLoopPlan.for_rate(rate, self.settings.duration_s)

        def measure(name: str, target: Target) -> None:
            best = max(top.achieved_rps for top in self.saturations[name])
            if plan.offered_rps > SATURATION_MARGIN * best:
                return
            log = self.work / f"h2load-{name}.tsv"
            measured = open_loop(self.pinning.load_prefix(), self.h2load, target.request, plan, log)
            self.say(f"{name}: {plan.offered_rps} req/s, p99 {measured.p99_ms:.2f} ms")
            self.rounds.setdefault((name, rate), []).append(measured)

        return measure

    def rows(self) -> None:
        """Saturation and one row per rate for every setup that ran: rounds combined."""
        for name, entry in self.entries.items():
            if entry["status"] != "ok":
                continue
            entry["saturation"] = combined(self.saturations[name])
            entry["rates"] = []
            for rate in sorted(self.settings.rates):
                rounds = self.rounds.get((name, rate))
                offered = OpenLoopPlan.for_rate(rate, self.settings.duration_s).offered_rps
                skipped = {"offered_rps": offered, "skipped": "above saturation"}
                entry["rates"].append(combined(rounds) if rounds else skipped)


def run(
    settings: Settings, h2load: str, pinning: Pinning, work: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Run every chosen setup; the results as JSON values (see bench/README.md)."""
    started = datetime.now(UTC)
    report: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(h2load),  # before pinning: it counts the usable CPUs
        "pinning": pinning.describe(),
        "settings": settings.to_json(),
        "load_generator": {
            "saturation": "h2load, closed loop: clients x streams, saturation_s per round",
            "rates": "h2load --rps, open loop: one request per 1/rate over staggered connections",
            "order": "interleaved: all setups at one load, then all at the next; rounds",
        },
    }
    try:
        load = workload(work, settings.cerbos_cache, pinning.envoy_cpus)
    except BundleError as exc:
        raise LoadError(f"cannot prepare the bundle: {exc}") from exc
    pinning.pin_servers()
    runner = _Runner(settings, h2load, pinning, work, say)
    with ExitStack() as stack:
        runner.start(stack, load)
        runner.each("warm-up", runner.warm_up)
        for round_number in range(1, settings.rounds + 1):
            runner.each(f"saturation, round {round_number}", runner.saturation)
        for round_number in range(1, settings.rounds + 1):
            for rate in sorted(settings.rates):
                runner.each(f"{rate} req/s, round {round_number}", runner.rate(rate))
    runner.rows()
    report["setups"] = runner.entries
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    ran_cerbos = runner.entries.get("cerbos", {}).get("versions", {}).get("cerbos")
    report["machine"]["cerbos"] = ran_cerbos or "not run"
    return report
