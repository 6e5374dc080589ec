"""``python -m bench.decision_cache``: what ``authz serve --decision-cache`` saves per Check.

In process, on the example bundle (``policies/``, a copy trusting a fresh key), the
whole Check path of :meth:`authz.server.AuthorizationService.respond` (CheckRequest
in, CheckResponse bytes out) is timed with ``perf_counter_ns``:

1. **one request**: the cache off (``off``; ``off_new``: each call a new order id, as
   ``miss`` has); on and hit every time; on and missed every time (each call a new
   order id); on and hit with an observer (Check metrics), which still builds the
   request attributes. Interleaved rounds, so machine noise hits each alike.
2. **traffic mixes**: requests drawn from U users (one token each) x P order paths,
   each picked with a Zipf-like skew s (rank r with weight 1 / r^s; s = 0: uniform),
   through a cache of ``--size`` entries living ``--ttl`` seconds, against the same
   requests without the cache: the hit rate and the per-Check median of both.

Before anything is timed, every request is answered with and without the cache and
the answers compared, so the benchmark cannot time wrong answers. Figures are for
one core of the machine in the header.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.decision_cache import DecisionCache
from authz.policy.bundle import load_bundle
from authz.server import AuthorizationService
from authz.store import SnapshotStore
from authz.telemetry import CheckCounts
from bench import bundles, timing
from bench.bundles import API_HOST, Minter
from bench.timing import Quietness, round_sizes, stats

__all__ = ["BenchError", "Mix", "Settings", "main", "render", "run", "zipf_picker"]

ROOT = Path(__file__).resolve().parent.parent
SERIES = ("off", "off_new", "hit", "miss", "hit_observed")
TENANT = "acme"


class BenchError(RuntimeError):
    """A request answered differently with the cache: nothing is timed."""


@dataclass(frozen=True, slots=True)
class Mix:
    """U users x P paths, each drawn with skew ``skew`` (0: uniform)."""

    users: int
    paths: int
    skew: float

    @classmethod
    def parse(cls, text: str) -> Mix:
        """``U:P:S``, e.g. ``1000:200:1.1``."""
        users, paths, skew = text.split(":")
        mix = cls(int(users), int(paths), float(skew))
        if mix.users < 1 or mix.paths < 1 or mix.skew < 0:
            raise ValueError(f"mix {text!r}: U and P at least 1, S not negative")
        return mix

    @property
    def label(self) -> str:
        return f"U={self.users} P={self.paths} s={self.skew:g}"


DEFAULT_MIXES = (Mix(1000, 200, 1.2), Mix(1000, 200, 0.8), Mix(100, 20, 1.0), Mix(1000, 200, 0.0))


@dataclass(frozen=True, slots=True)
class Settings:
    """What to run; validated on construction."""

    iterations: int = 20_000
    warmup: int = 2_000
    rounds: int = 10
    size: int = 10_000
    ttl: float = 1.0
    mixes: tuple[Mix, ...] = field(default=DEFAULT_MIXES)
    seed: int = 7

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.rounds < 1 or self.rounds > self.iterations:
            raise ValueError("iterations and rounds at least 1, rounds at most iterations")
        if self.warmup < 0 or self.size < 1 or not self.ttl > 0:
            raise ValueError("warmup not negative, size at least 1, ttl more than 0")


def zipf_picker(count: int, skew: float, rng: random.Random) -> Callable[[], int]:
    """Draws 0..count-1, index r with weight 1 / (r + 1) ** skew."""
    cumulative: list[float] = []
    total = 0.0
    for rank in range(1, count + 1):
        total += 1.0 / rank**skew
        cumulative.append(total)
    population = range(count)
    return lambda: rng.choices(population, cum_weights=cumulative)[0]


class _Requests:
    """CheckRequests of vendor staff reading their tenant's orders, built once each."""

    def __init__(self, minter: Minter, users: int) -> None:
        self._minter = minter
        self._tokens: list[str] = []
        self._messages: dict[tuple[int, int], Any] = {}
        self.need(users)

    def need(self, users: int) -> None:
        while len(self._tokens) < users:
            subject = f"staff-{len(self._tokens)}"
            self._tokens.append(self._minter.token(subject, ["vendor:staff"], TENANT))

    def message(self, user: int, order: int) -> Any:
        key = (user, order)
        found = self._messages.get(key)
        if found is None:
            path = f"/api/v1/vendors/{TENANT}/orders/o-{order}"
            found = bundles.check_request("GET", API_HOST, path, token=self._tokens[user])
            self._messages[key] = found
        return found


def _answer(service: AuthorizationService, message: Any) -> tuple[int, str, str]:
    """What a response says, without its decision id: status code, reason, rule."""
    response = external_auth_pb2.CheckResponse.FromString(service.respond(message))
    fields = response.dynamic_metadata.fields
    return response.status.code, fields["reason"].string_value, fields["rule"].string_value


def _verify(plain: AuthorizationService, cached: AuthorizationService, messages: Any) -> None:
    """Each message twice through the cache (a miss, then a hit) and once without it."""
    for message in messages:
        expected = _answer(plain, message)
        for _ in range(2):
            got = _answer(cached, message)
            if got != expected:
                raise BenchError(f"with the cache {got}, without {expected}")
    if expected[1] != "allowed":
        raise BenchError(f"the benchmark request was not allowed: {expected}")


def _mean_us(samples: array[int]) -> float:
    return round(sum(samples) / len(samples) / 1000, 2)


def _time(service: AuthorizationService, messages: Sequence[Any], out: array[int]) -> None:
    clock = time.perf_counter_ns
    respond = service.respond
    for message in messages:
        began = clock()
        respond(message)
        out.append(clock() - began)


def _one_request(store: SnapshotStore, requests: _Requests, settings: Settings) -> dict[str, Any]:
    """Series 1: off, hit, miss and hit with an observer, interleaved."""
    services = {
        "off": AuthorizationService(store),
        "off_new": AuthorizationService(store),
        "hit": AuthorizationService(store, cache=DecisionCache(settings.size, 3600.0)),
        "miss": AuthorizationService(store, cache=DecisionCache(settings.size, 3600.0)),
        "hit_observed": AuthorizationService(
            store, observers=[CheckCounts()], cache=DecisionCache(settings.size, 3600.0)
        ),
    }
    one = requests.message(0, 0)
    _verify(services["off"], services["hit"], [one])
    _verify(services["off"], services["hit_observed"], [one])
    fresh = iter(range(1, 10**9))  # order ids never asked for yet: every call a miss

    def batch(name: str, count: int) -> list[Any]:
        if name in ("miss", "off_new"):
            return [requests.message(0, next(fresh)) for _ in range(count)]
        return [one] * count

    for name, service in services.items():
        _time(service, batch(name, settings.warmup), array("q"))
    samples = {name: array("q") for name in SERIES}
    for index, count in enumerate(round_sizes(settings.iterations, settings.rounds)):
        names = SERIES[index % len(SERIES) :] + SERIES[: index % len(SERIES)]  # rotate
        for name in names:
            _time(services[name], batch(name, count), samples[name])
    report = {
        name: {**stats(values), "mean_us": _mean_us(values)} for name, values in samples.items()
    }
    for name in SERIES:
        cache = services[name].cache
        if cache is not None:
            report[name]["hits"], report[name]["misses"] = cache.hits, cache.misses
    return report


def _mix(store: SnapshotStore, requests: _Requests, mix: Mix, settings: Settings) -> dict[str, Any]:
    """Series 2: one traffic mix with the cache and without it, interleaved by round."""
    rng = random.Random(f"{settings.seed}:{mix.label}")
    requests.need(mix.users)
    user, order = zipf_picker(mix.users, mix.skew, rng), zipf_picker(mix.paths, mix.skew, rng)
    total = settings.warmup + settings.iterations
    sequence = [requests.message(user(), order()) for _ in range(total)]
    plain = AuthorizationService(store)
    checking = AuthorizationService(store, cache=DecisionCache(settings.size, settings.ttl))
    _verify(plain, checking, list({id(m): m for m in sequence[:200]}.values()))
    cache = DecisionCache(settings.size, settings.ttl)
    cached = AuthorizationService(store, cache=cache)
    samples = {"off": array("q"), "on": array("q")}
    warm = sequence[: settings.warmup]
    _time(plain, warm, array("q"))
    _time(cached, warm, array("q"))
    hits, misses = cache.hits, cache.misses
    start = settings.warmup
    for index, count in enumerate(round_sizes(settings.iterations, settings.rounds)):
        chunk = sequence[start : start + count]
        start += count
        order_of = [("off", plain), ("on", cached)]
        for name, service in order_of if index % 2 == 0 else order_of[::-1]:
            _time(service, chunk, samples[name])
    hits, misses = cache.hits - hits, cache.misses - misses
    off = {**stats(samples["off"]), "mean_us": _mean_us(samples["off"])}
    on = {**stats(samples["on"]), "mean_us": _mean_us(samples["on"])}
    return {
        "mix": mix.label,
        "distinct_requests": len({id(message) for message in sequence}),
        "hit_rate": round(hits / max(1, hits + misses), 3),
        "off": off,
        "on": on,
        "on_over_off_median": round(on["median_us"] / off["median_us"], 3),
        "on_over_off_mean": round(on["mean_us"] / off["mean_us"], 3),
        "evictions": cache.evictions,
    }


def run(settings: Settings) -> dict[str, Any]:
    """Run both series; the report (see ``--json``)."""
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-decision-cache-") as scratch:
        root = Path(scratch) / "example"
        bundles.copy_example(ROOT / "policies", root, Path(scratch) / "example.pem")
        store = SnapshotStore(load_bundle(root))
        requests = _Requests(Minter(Path(scratch) / "example.pem", now.timestamp()), 1)
        gc.collect()
        quietness = Quietness()
        one = _one_request(store, requests, settings)
        mixes = [_mix(store, requests, mix, settings) for mix in settings.mixes]
        conditions = quietness.report()
    return {
        "machine": timing.machine(),
        "settings": {
            "iterations": settings.iterations,
            "warmup": settings.warmup,
            "rounds": settings.rounds,
            "size": settings.size,
            "ttl": settings.ttl,
        },
        "conditions": conditions,
        "one_request": one,
        "mixes": mixes,
    }


def render(report: dict[str, Any]) -> str:
    """The report as text tables."""
    machine, settings = report["machine"], report["settings"]
    lines = [
        f"{machine['cpu_model']} ({machine['cpus_usable']} usable), {machine['python']}",
        f"{settings['iterations']} timed calls per series in {settings['rounds']} rounds; "
        f"cache of {settings['size']} entries, ttl {settings['ttl']:g}s (mixes)",
        "",
        "one request, whole Check (µs)     median      p99     mean",
    ]
    for name in SERIES:
        row = report["one_request"][name]
        lines.append(
            f"  {name:<30} {row['median_us']:>8.2f} {row['p99_us']:>8.2f} {row['mean_us']:>8.2f}"
        )
    lines += [
        "",
        "traffic mix (µs)           hit rate   off p50   on p50  off mean  on mean  mean on/off",
    ]
    for mix in report["mixes"]:
        off, on = mix["off"], mix["on"]
        lines.append(
            f"  {mix['mix']:<24} {mix['hit_rate']:>8.1%} {off['median_us']:>9.2f} "
            f"{on['median_us']:>8.2f} {off['mean_us']:>9.2f} {on['mean_us']:>8.2f} "
            f"{mix['on_over_off_mean']:>12.2f}"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.decision_cache", description=__doc__.split("\n\n")[0]
    )
    defaults = Settings()
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--size", type=int, default=defaults.size, help="cache entries")
    parser.add_argument("--ttl", type=float, default=defaults.ttl, help="entry life (s), mixes")
    parser.add_argument(
        "--mix",
        action="append",
        type=Mix.parse,
        metavar="U:P:S",
        help="users:paths:skew, repeatable (default: "
        + ", ".join(f"{m.users}:{m.paths}:{m.skew:g}" for m in DEFAULT_MIXES)
        + ")",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings(
            args.iterations,
            args.warmup,
            args.rounds,
            args.size,
            args.ttl,
            tuple(args.mix) if args.mix else DEFAULT_MIXES,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        report = run(settings)
    except BenchError as exc:
        print(f"bench.decision_cache: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
