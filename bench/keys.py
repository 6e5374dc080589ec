"""``python -m bench.keys``: Check under load while the identity provider rotates keys and fails.

Against ``python -m authz serve`` (a child process) whose bundle trusts a real
HTTPS identity provider on loopback (OIDC discovery, a test CA; the provider of
``tests/identity/idp.py``), client workers call Check back to back with tokens
that must be allowed, through four phases of equal length:

1. **steady**: tokens signed by key k1, most of them already verified (cache hits)
   and a share never seen before (full verification);
2. **rotation**: the provider publishes k2 and, from the phase's first call, the
   clients sign with it: the first k2 token triggers one refresh that the others
   share; reported: failed calls, the refreshes the provider served, and the time
   from the switch to the first allowed k2 call;
3. **outage**: the provider is down (connections refused) and the server keeps
   trying to refresh every second in the background; tokens are signed by k2;
4. **recovered**: the provider is back.

The goal: zero failed calls in every phase, and outage latencies equal to steady
ones (no request waits on the network). The client shares the machine's cores
with the server: latencies are for comparing phases of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from bench.tables import table
from bench.timing import stats
from dev.authz_server import ONE_PROCESS, AuthzServer
from dev.ports import free_port
from tests.engine.checks import check_request
from tests.identity.idp import IdentityProvider
from tests.identity.signing import SigningKey, ec_key, rsa_key, sign

__all__ = ["Settings", "main", "run"]

AUDIENCE = "shop-api"
PHASES = ("steady", "rotation", "outage", "recovered")
_SERVER_FLAGS = (
    *ONE_PROCESS,
    "--jwks-refresh=1",
    "--jwks-min-refresh=1",
    "--jwks-timeout=2",
    "--jwks-kid-wait=1",
    "--no-watch",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """What to run; validated on construction."""

    seconds: float = 5.0  # per phase
    clients: int = 4
    fresh_share: float = 0.1  # of calls with a token never verified before

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.clients < 1 or not 0 <= self.fresh_share <= 1:
            raise ValueError("seconds > 0, clients >= 1 and 0 <= fresh-share <= 1 are needed")


@dataclass(slots=True)
class Phase:
    """One phase's calls: latencies (ns) and failures by kind."""

    latencies: array[int] = field(default_factory=lambda: array("q"))
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    first_allowed_s: float | None = None  # after the phase began


def _bundle(directory: Path, idp: IdentityProvider) -> Path:
    bundle = directory / "bundle"
    bundle.mkdir()
    (bundle / "idp-ca.pem").write_bytes(idp.ca_file.read_bytes())
    (bundle / "issuer.yaml").write_text(
        "apiVersion: authz/v1\nkind: Issuer\nmetadata: {name: idp}\nspec:\n"
        f"  issuer: {idp.issuer}\n  discovery: true\n  caFile: idp-ca.pem\n"
        f"  audiences: [{AUDIENCE}]\n  algorithms: [RS256, ES256]\n  rolesClaim: roles\n"
    )
    (bundle / "policy.yaml").write_text(
        "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: api}\nspec:\n  rules:\n"
        "    - name: readers\n      from: [{roles: [reader]}]\n"
        '      to: [{methods: [GET], paths: ["/items"]}]\n'
    )
    return bundle


class Tokens:
    """Requests with tokens signed by the current key: a pool reused, and fresh ones."""

    def __init__(self, issuer: str, fresh_share: float) -> None:
        self.issuer = issuer
        self.key: SigningKey | None = None
        self._pool: list[Any] = []
        self._cycle: Iterator[Any] = iter(())
        self._fresh_every = round(1 / fresh_share) if fresh_share else 0
        self._calls = itertools.count()

    def use(self, key: SigningKey) -> None:
        self.key = key
        self._pool = [self._request(f"pool-{n}") for n in range(200)]
        self._cycle = itertools.cycle(self._pool)

    def next(self) -> Any:
        n = next(self._calls)
        if self._fresh_every and n % self._fresh_every == 0:
            return self._request(f"fresh-{n}")
        return next(self._cycle)

    def _request(self, subject: str) -> Any:
        assert self.key is not None
        now = time.time()
        claims = {"iss": self.issuer, "sub": subject, "aud": AUDIENCE, "roles": ["reader"]}
        token = sign(self.key, {**claims, "iat": now, "exp": now + 3600})
        return check_request(path="/items", token=token)


async def _phase(target: str, tokens: Tokens, settings: Settings, into: Phase) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline = began + settings.seconds
    async with grpc.aio.insecure_channel(target) as channel:
        check = external_auth_pb2_grpc.AuthorizationStub(channel).Check

        async def client() -> None:
            while loop.time() < deadline:
                request = tokens.next()
                started = time.perf_counter_ns()
                try:
                    response = await check(request, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    into.failures[exc.code().name] += 1
                    continue
                into.latencies.append(time.perf_counter_ns() - started)
                if response.status.code != 0:
                    into.failures["not allowed"] += 1
                elif into.first_allowed_s is None:
                    into.first_allowed_s = loop.time() - began

        await asyncio.gather(*(client() for _ in range(settings.clients)))
    into.seconds = loop.time() - began


def run(settings: Settings, scratch: Path) -> Iterator[str]:
    """Every measurement; the report's lines, as they are measured."""
    k1, k2 = rsa_key("k1"), ec_key("k2", ec.SECP256R1(), "ES256")
    phases = {name: Phase() for name in PHASES}
    with IdentityProvider(scratch, k1) as idp:
        log = (scratch / "server.log").open("wb")
        server = AuthzServer(_bundle(scratch, idp), free_port(), log, options=_SERVER_FLAGS)
        server.start()
        try:
            server.wait_serving()
            tokens = Tokens(idp.issuer, settings.fresh_share)
            tokens.use(k1)
            yield (
                f"bench.keys: {settings.clients} client(s), phases of {settings.seconds:g} s, "
                f"{settings.fresh_share:.0%} of tokens never seen before, "
                f"Python {sys.version.split()[0]}"
            )
            fetches = idp.fetches()
            asyncio.run(_phase(server.target, tokens, settings, phases["steady"]))
            idp.keys = [k1, k2]
            jwks_before = idp.fetches()
            tokens.use(k2)
            asyncio.run(_phase(server.target, tokens, settings, phases["rotation"]))
            rotation_fetches = idp.fetches() - jwks_before
            idp.stop()
            asyncio.run(_phase(server.target, tokens, settings, phases["outage"]))
            idp.start()
            asyncio.run(_phase(server.target, tokens, settings, phases["recovered"]))
        finally:
            server.stop()
            log.close()
    yield from _report(phases)
    failed_fetches = (scratch / "server.log").read_text().count("fetch failed")
    first = phases["rotation"].first_allowed_s
    yield ""
    yield (
        f"rotation: JWKS fetched {rotation_fetches} time(s) during the phase (periodic refreshes "
        f"every 1 s included; {fetches} before the load); first allowed call signed with the new "
        f"key after {first * 1000:.1f} ms"
        if first is not None
        else "rotation: nothing allowed"
    )
    yield f"outage: {failed_fetches} background refresh(es) failed; no call waited for one"


def _report(phases: dict[str, Phase]) -> Iterator[str]:
    steady = stats(phases["steady"].latencies)
    rows = []
    for name, phase in phases.items():
        found = stats(phase.latencies)
        rows.append(
            [
                name,
                f"{len(phase.latencies) / phase.seconds:.0f}",
                str(sum(phase.failures.values())),
                f"{found['median_us']:.0f}",
                f"{found['p99_us']:.0f}",
                f"{found['max_us']:.0f}",
                f"{found['p99_us'] / steady['p99_us']:.2f}x",
            ]
        )
    header = ["phase", "calls/s", "failed", "p50 us", "p99 us", "max us", "p99 / steady"]
    yield from table("<>>>>>>", header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keys", description=__doc__)
    defaults = Settings()
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="per phase")
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--fresh-share", type=float, default=defaults.fresh_share)
    args = parser.parse_args(argv)
    settings = Settings(args.seconds, args.clients, args.fresh_share)
    with tempfile.TemporaryDirectory(prefix="authz-bench-keys-") as scratch:
        for line in run(settings, Path(scratch)):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
