"""The decision-cache prototype of ``bench.decision_cache``: measured against ``decide``, so
it must give the same answers, never an older policy version's, never past a token's expiry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from authz.decision import Reason
from authz.engine import decide
from authz.policy.bundle import Snapshot
from bench import decision_cache
from bench.decision_cache import cached_decide
from tests.engine.checks import attributes
from tests.engine.shop import Keys
from tests.policy.bundles import NOW, compile_bundle, policy

ITEMS = "/api/v1/vendors/acme/items/1"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    decision_cache._cache.clear()
    yield
    decision_cache._cache.clear()


def test_a_hit_is_the_decision_decide_made(shop: Snapshot, keys: Keys) -> None:
    token = keys.trusted.token(sub="alice", tenant="acme", roles=["vendor:staff"])
    request = attributes(method="GET", path=ITEMS, token=token)
    first = cached_decide(shop, request, NOW)
    assert first == decide(shop, request, NOW)
    assert first.reason is Reason.ALLOWED
    assert cached_decide(shop, attributes(method="GET", path=ITEMS, token=token), NOW) is first
    other = attributes(method="GET", path="/api/v1/vendors/globex/items/1", token=token)
    assert cached_decide(shop, other, NOW).reason is Reason.CROSS_TENANT


def test_no_hit_past_the_token_expiry(shop: Snapshot, keys: Keys) -> None:
    token = keys.trusted.token(ttl=1, sub="alice", tenant="acme", roles=["vendor:staff"])
    request = attributes(method="GET", path=ITEMS, token=token)
    assert cached_decide(shop, request, NOW).reason is Reason.ALLOWED
    later = NOW + timedelta(seconds=0.9) + timedelta(minutes=5)  # past exp and any leeway
    assert cached_decide(shop, request, later).reason is Reason.INVALID_TOKEN


def test_no_hit_under_another_policy_version(shop: Snapshot, tmp_path: Path) -> None:
    request = attributes(method="GET", path="/anything")
    assert cached_decide(shop, request, NOW).reason is not Reason.ALLOWED
    open_everything = compile_bundle(tmp_path, {"open.yaml": policy("open", "[{name: all}]")})
    assert cached_decide(open_everything, request, NOW).reason is Reason.ALLOWED
