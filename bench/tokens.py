"""``python -m bench.tokens``: what ``TokenVerifier.verify`` costs, cached and not.

For RS256, ES256 and EdDSA (Ed25519), each with a key made as ``authz keygen`` makes one
(:mod:`authz.identity.minting`) and an Issuer trusting its JWKS, two paths are timed:

- **hit**: a token verified before, served from the verified-token cache (an LRU lookup
  and the validity-window check);
- **miss**: full verification (parse, issuer and algorithm checks, the signature, the
  claims, the cache insert). A verifier whose cache holds one token is called with a
  rotation of distinct tokens, so every call misses and pays the insert and the eviction,
  as a token seen for the first time does once the cache is full.

A no-op with the same signature is timed alike: the floor of the timer and a Python call.
The baseline of each algorithm is its hit path, measured in the same rounds: ratios are
miss / hit at the median and at p99. Before anything is timed every token must verify,
the hit verifier must return its cached Token and the miss verifier a new one, so a
broken benchmark cannot report fast refusals. Series are interleaved in rounds, their
order rotated each round, so machine noise hits all of them alike.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.backends.openssl.backend import backend as openssl

from authz.identity import HeaderSource, Issuer, KeySet, Token, TokenError, TokenVerifier
from authz.identity.minting import mint, write_key_pair
from bench import timing
from bench.timing import Quietness, round_sizes, stats
from bench.tokens_report import ALGORITHMS, NOOP, PATHS, render

__all__ = ["BenchError", "Settings", "Subject", "check", "main", "prepare", "render", "run"]

ISSUER = "https://idp.bench.example.com"
AUDIENCE = "shop-api"
TOKEN_TTL_S = 3600
_DEFAULT_CACHE_SIZE = 10_000  # TokenVerifier's default, as the server builds it


class BenchError(RuntimeError):
    """A verifier did not behave as the benchmark needs: nothing is timed."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What to run; validated on construction."""

    iterations: int = 20_000
    warmup: int = 1_000
    rounds: int = 20
    pool: int = 64  # distinct tokens per algorithm

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.rounds < 1:
            raise ValueError("iterations and rounds must be at least 1")
        if self.warmup < 0:
            raise ValueError("warmup must not be negative")
        if self.rounds > self.iterations:
            raise ValueError("rounds must not exceed iterations")
        if not 2 <= self.pool <= _DEFAULT_CACHE_SIZE:
            # Two at least, or the miss rotation would hit; at most what the hit cache holds.
            raise ValueError(f"pool must be between 2 and {_DEFAULT_CACHE_SIZE}")


@dataclass(frozen=True, slots=True)
class Subject:
    """One algorithm: its distinct tokens and the two verifiers timed with them."""

    alg: str
    issuer: Issuer
    tokens: tuple[str, ...]
    hit: TokenVerifier  # the server's cache size: holds every token once verified
    miss: TokenVerifier  # a cache of one: the next token of the rotation is never in it


def prepare(settings: Settings, scratch: Path, now: float) -> tuple[Subject, ...]:
    """A key pair per algorithm under ``scratch``, its Issuer, tokens and verifiers."""
    return tuple(_subject(alg, settings.pool, scratch, now) for alg in ALGORITHMS)


def _subject(alg: str, pool: int, scratch: Path, now: float) -> Subject:
    kid = f"bench-{alg.lower()}"
    key_path, jwks_path = scratch / f"{kid}.pem", scratch / f"{kid}.jwks.json"
    write_key_pair(key_path, jwks_path, kid, alg)
    issuer = Issuer(
        name="bench-idp",
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        algorithms=(alg,),
        keys=KeySet.from_jwks(json.loads(jwks_path.read_text())),
        roles_claim="roles",
        tenant_claim="tenant",
        from_headers=(HeaderSource(name="authorization", prefix="Bearer "),),
        leeway_seconds=30,
    )
    tokens = tuple(
        mint(key_path, kid, alg, _claims(index), TOKEN_TTL_S, now=now) for index in range(pool)
    )
    hit = TokenVerifier([issuer], cache_size=_DEFAULT_CACHE_SIZE)
    return Subject(alg, issuer, tokens, hit, TokenVerifier([issuer], cache_size=1))


def _claims(index: int) -> dict[str, Any]:
    """A realistic payload: a user, two roles and a tenant."""
    roles = ["staff", "reader"]
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"user-{index}",
        "roles": roles,
        "tenant": "acme",
    }


def check(subject: Subject, now: float) -> None:
    """Verify every token once; raise :class:`BenchError` unless each is accepted, the hit
    verifier then serves it from its cache, and the miss verifier verifies it anew."""
    for token in subject.tokens:
        first = subject.hit.verify(token, now)
        if isinstance(first, TokenError):
            raise BenchError(f"{subject.alg}: a token was refused ({first.code}: {first.detail})")
        if subject.hit.verify(token, now) is not first:
            raise BenchError(f"{subject.alg}: the hit verifier did not serve its cached token")
    # The last token of the rotation is left in the cache of one, and timing starts with
    # the first: even the first timed call misses.
    one, other = subject.tokens[-1], subject.tokens[0]
    before = subject.miss.verify(one, now)
    subject.miss.verify(other, now)
    again = subject.miss.verify(one, now)
    if not isinstance(before, Token) or again is before or again != before:
        raise BenchError(f"{subject.alg}: the miss verifier did not verify the token anew")


Call = Callable[[str, float], object]


def _noop(token: str, now: float) -> None:
    """The floor: a call with verify's signature that does nothing."""


@dataclass(slots=True)
class _Series:
    """One timed path, cycling through its tokens across warm-up and rounds alike, so
    two consecutive calls never pass the same token (the miss path depends on it)."""

    call: Call
    tokens: tuple[str, ...]
    position: int = 0
    samples: array[int] = field(default_factory=lambda: array("q"))

    def run(self, count: int, now: float, keep: bool) -> None:
        clock, call, tokens = time.perf_counter_ns, self.call, self.tokens
        size, out = len(tokens), self.samples if keep else array("q")
        for index in range(self.position, self.position + count):
            token = tokens[index % size]
            began = clock()
            call(token, now)
            out.append(clock() - began)
        self.position += count


def _measure(
    subjects: Sequence[Subject], settings: Settings, now: float
) -> tuple[dict[str, _Series], dict[str, Any]]:
    """Every series timed in interleaved rounds, and how quiet the machine was meanwhile."""
    series = {NOOP: _Series(_noop, subjects[0].tokens)}
    for subject in subjects:
        series[f"{subject.alg}/hit"] = _Series(subject.hit.verify, subject.tokens)
        series[f"{subject.alg}/miss"] = _Series(subject.miss.verify, subject.tokens)
    order = list(series.values())
    for each in order:
        each.run(settings.warmup, now, keep=False)
    gc.collect()
    quietness = Quietness()
    for round_index, count in enumerate(round_sizes(settings.iterations, settings.rounds)):
        shift = round_index % len(order)  # no series always runs first, or after another
        for each in order[shift:] + order[:shift]:
            each.run(count, now, keep=True)
    return series, quietness.report()


def run(settings: Settings) -> dict[str, Any]:
    """Run the whole benchmark; returns the report (see ``--json``)."""
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as scratch:
        subjects = prepare(settings, Path(scratch), now)
    for subject in subjects:
        check(subject, now)
    series, conditions = _measure(subjects, settings, now)
    algorithms = {}
    for subject in subjects:
        paths = {path: stats(series[f"{subject.alg}/{path}"].samples) for path in PATHS}
        algorithms[subject.alg] = {
            "token_bytes": len(subject.tokens[0]),
            **paths,
            "miss_over_hit": {
                key: round(paths["miss"][f"{key}_us"] / paths["hit"][f"{key}_us"], 1)
                for key in ("median", "p99")
            },
        }
    return {
        "machine": _machine(),
        "settings": {
            "iterations": settings.iterations,
            "warmup": settings.warmup,
            "rounds": settings.rounds,
            "pool": settings.pool,
        },
        "conditions": conditions,
        NOOP: stats(series[NOOP].samples),
        "algorithms": algorithms,
    }


def _machine() -> dict[str, Any]:
    return {
        **timing.machine(),
        "pyjwt": importlib.metadata.version("pyjwt"),
        "cryptography": importlib.metadata.version("cryptography"),
        "openssl": openssl.openssl_version_text(),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.tokens", description=__doc__)
    defaults = Settings()
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--pool", type=int, default=defaults.pool, help="tokens per algorithm")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings(args.iterations, args.warmup, args.rounds, args.pool)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        report = run(settings)
    except BenchError as exc:
        print(f"bench.tokens: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
