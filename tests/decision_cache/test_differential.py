"""Random requests over the example bundle (policies/), decided by the server's Check
path with the decision cache and without it: every answer must be the same.

Two :class:`AuthorizationService` s share one store; each call goes to both, in random
order, from a pool small enough that most calls repeat an earlier request.
"""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authz.decision import Decision
from authz.decision_cache import DecisionCache
from authz.observe import Checked
from authz.policy.bundle import load_bundle
from authz.server import AuthorizationService
from authz.store import SnapshotStore
from tests.engine.checks import check_request
from tests.policy.bundles import SigningKey

REPO = Path(__file__).resolve().parents[2]
ISSUER = "https://idp.shop.example.com"
HOSTS = [
    "api.shop.example.com",
    "acme.vendors.shop.example.com",
    "admin.shop.example.com",
    "pay.payment.svc.cluster.local",
    "media.shop.example.com",
]
PATHS = [
    "/api/v1/vendors/acme/items",
    "/api/v1/vendors/acme/items/7",
    "/api/v1/vendors/globex/items/7",
    "/api/v1/vendors/acme/orders/9/refund",
    "/api/v1/vendors/globex/orders/9/refund",
    "/api/v1/orders",
    "/api/v1/customers/cust-1/orders",
    "/api/v1/customers/cust-2/orders/4",
    "/api/v1/catalog/shoes?q=red",
    "/api/v1/payments",
    "/api/v1/payments/12",
    "/admin/reports",
    "/portal",
    "/img/a.jpg",
    "/healthz",
    "/api/v1/vendors/acme/../globex/items/1",
    "/api/v1/%2e%2e/%2fsecret",
]
PRINCIPALS = [
    None,
    None,
    "spiffe://cluster.local/ns/order/sa/order-service",
    "spiffe://cluster.local/ns/legacy/sa/batch",
    "cluster.local/ns/shipping/sa/tracker",
]
HEADERS = [
    {},
    {"x-tenant-id": "acme"},
    {"x-tenant-id": "globex"},
    {"x-refund-amount": "100"},
    {"x-refund-amount": "9000"},
    {"x-amount": "50", "x-idempotency-key": "k1"},
    {"x-amount": "50000", "x-idempotency-key": ""},
    {"x-change-ticket": "CHG-1"},
]


class Recorder:
    """Keeps the decision of every Check (an observer, as the decision log is one)."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.cached = 0

    def checked(self, event: Checked) -> None:
        self.decisions.append(event.decision)
        self.cached += event.cached


def _bundle(tmp_path: Path, key: SigningKey) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(REPO / "policies", directory)
    shutil.copyfile(key.jwks_path, directory / "keys" / "demo-jwks.json")
    return directory


def _tokens(key: SigningKey) -> list[str | None]:
    now = datetime.now(UTC)
    people: list[dict[str, Any]] = [
        {"sub": "cust-1", "roles": ["customer"]},
        {"sub": "cust-2", "roles": "customer"},
        {"sub": "ann", "roles": ["vendor:staff"], "tenant": "acme"},
        {"sub": "max", "roles": ["vendor:manager"], "tenant": "acme"},
        {"sub": "gus", "roles": ["vendor:manager"], "tenant": "globex"},
        {"sub": "root", "roles": ["platform:admin"]},
    ]
    tokens: list[str | None] = [key.token(now=now, iss=ISSUER, **p) for p in people]
    return [*tokens, None, "not-a-jwt"]


def _pool(key: SigningKey, bases: int, rng: random.Random) -> list[Any]:
    """``bases`` random requests, each with neighbours that differ from it in one part
    only: a key that left that part out would serve one's decision for the other."""
    choices: dict[str, list[Any]] = {
        "method": ["GET", "GET", "POST", "PUT", "DELETE"],
        "path": PATHS,
        "host": HOSTS,
        "token": _tokens(key),
        "principal": PRINCIPALS,
        "headers": HEADERS,
    }
    pool = []
    for _ in range(bases):
        base = {name: rng.choice(values) for name, values in choices.items()}
        pool.append(check_request(**base))
        for part in sorted(choices):
            pool.append(check_request(**{**base, part: rng.choice(choices[part])}))
    for query in ("red", "x" * 200, "x" * 201):  # the same normalised path: q decides
        pool.append(check_request(path=f"/api/v1/catalog/shoes?q={query}", host=HOSTS[0]))
    return pool


def test_with_and_without_the_cache_every_decision_agrees(tmp_path: Path, key: SigningKey) -> None:
    store = SnapshotStore(load_bundle(_bundle(tmp_path, key)))
    plain, cached = Recorder(), Recorder()
    without = AuthorizationService(store, observers=[plain])
    cache = DecisionCache(128, 60.0)  # smaller than the pool: evictions happen too
    with_cache = AuthorizationService(store, observers=[cached], cache=cache)
    rng = random.Random(20261128)
    pool = _pool(key, 40, rng)
    for _ in range(4000):
        message = rng.choice(pool)
        services = [without, with_cache]
        rng.shuffle(services)
        for service in services:
            service.respond(message)
    assert len(plain.decisions) == len(cached.decisions) == 4000
    for index, (one, other) in enumerate(zip(plain.decisions, cached.decisions, strict=True)):
        assert one == other, f"call {index}"
    reasons = {decision.reason.value for decision in plain.decisions}
    assert {"allowed", "denied", "cross_tenant", "no_match", "invalid_token"} <= reasons
    assert {"missing_token", "bad_path"} <= reasons
    assert any(decision.would_match for decision in plain.decisions)
    assert any(decision.audit for decision in plain.decisions)
    assert cache.hits == cached.cached > 1500
    assert cache.evictions > 0
