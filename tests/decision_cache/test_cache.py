"""The decision cache against ``decide`` on real snapshots, at times the tests choose.

``decided`` is what the server does with the cache: look up, else decide and store.
Every hit must be the decision ``decide`` makes for the same request at that time.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from authz.decision import Decision, Reason
from authz.decision_cache import DecisionCache, decide_through
from authz.engine import decide
from authz.policy.bundle import Snapshot, load_bundle
from authz.policy.lockdown import Lockdown
from authz.request import from_check_request
from tests.decision_cache.bundle import REVOKED_PRINCIPAL, REVOKED_SUBJECT, request
from tests.pki import Issued
from tests.policy.bundles import NOW, SigningKey

ITEMS = "/vendors/acme/items/1"


@pytest.fixture(scope="module")
def snapshot(bundle: Path) -> Snapshot:
    return load_bundle(bundle)


def decided(
    cache: DecisionCache, snapshot: Snapshot, message: Any, now: datetime = NOW
) -> tuple[Decision, bool]:
    """(the decision, whether it came from the cache), as the server makes it."""
    found = cache.lookup(snapshot, message, now.timestamp())
    if found.decision is not None:
        return found.decision, True
    decision = decide(snapshot, from_check_request(message), now)
    cache.store(found, snapshot, message, decision, now.timestamp())
    return decision, False


def fresh(snapshot: Snapshot, message: Any, now: datetime = NOW) -> Decision:
    return decide(snapshot, from_check_request(message), now)


def staff(key: SigningKey, tenant: str = "acme", **claims: Any) -> str:
    return key.token(sub="alice", roles=["staff"], tenant=tenant, **claims)


def locked(snapshot: Snapshot, expires: datetime | None = None, tenant: str = "acme") -> Snapshot:
    """``snapshot`` with a lockdown of ``tenant``, as the store builds it."""
    lockdown = Lockdown("incident", tenant, "test", None, None, expires)
    return dataclasses.replace(snapshot, lockdowns=(*snapshot.lockdowns, lockdown))


CASES: dict[str, tuple[dict[str, Any], Reason]] = {
    "allowed": ({"path": ITEMS, "token": "staff"}, Reason.ALLOWED),
    "denied": ({"path": "/admin/x", "token": "staff"}, Reason.DENIED),
    "cross-tenant": ({"path": "/vendors/globex/items/1", "token": "staff"}, Reason.CROSS_TENANT),
    "missing-token": ({"path": "/orders"}, Reason.MISSING_TOKEN),
    "no-match": ({"path": "/nothing", "token": "staff"}, Reason.NO_MATCH),
    "revoked-token": ({"path": ITEMS, "token": "mallory"}, Reason.REVOKED),
    "revoked-workload": ({"path": "/search?q=ok", "principal": REVOKED_PRINCIPAL}, Reason.REVOKED),
    "revoked-certificate": ({"path": "/search?q=ok", "certificate": "revoked"}, Reason.REVOKED),
    "bad-path": ({"path": "/a/%2e%2e/%2e%2e/etc", "token": "staff"}, Reason.BAD_PATH),
    "lockdown": ({"path": ITEMS, "token": "staff", "locked": True}, Reason.LOCKDOWN),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_hit_is_the_decision_decide_makes(
    snapshot: Snapshot, key: SigningKey, certs: tuple[Issued, Issued], case: str
) -> None:
    fields, reason = CASES[case]
    fields = dict(fields)
    if fields.pop("locked", False):
        snapshot = locked(snapshot)
    token = fields.pop("token", None)
    if token is not None:
        fields["token"] = key.token(sub=REVOKED_SUBJECT) if token == "mallory" else staff(key)
    if fields.pop("certificate", None):
        fields["certificate"] = certs[0]
    if "principal" in fields:
        fields["principal"] = f"spiffe://{fields['principal']}"
    cache = DecisionCache(100, 60.0)
    first, hit = decided(cache, snapshot, request(**fields))
    assert (first.reason, hit) == (reason, False)
    again, hit = decided(cache, snapshot, request(**fields), NOW + timedelta(seconds=1))
    assert hit
    assert again == fresh(snapshot, request(**fields), NOW + timedelta(seconds=1)) == first
    assert (cache.hits, cache.misses, cache.entries) == (1, 1, 1)


ORDER = "spiffe://cluster.local/ns/order/sa/order"
REFUND = {"method": "POST", "path": "/vendors/acme/refunds", "token": "staff"}
NETWORK = {"path": "/network"}

#: Two requests differing in one key part, that the bundle decides differently (allow
#: the first, deny the second): the base request's fields, and what the second changes.
PAIRS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "method": ({"path": ITEMS, "token": "staff"}, {"method": "POST"}),
    "host": ({"path": "/hosted", "host": "a.shop.test"}, {"host": "b.shop.test"}),
    "path": ({"path": ITEMS, "token": "staff"}, {"path": "/vendors/globex/items/1"}),
    "query": ({"path": "/search?q=ok"}, {"path": "/search?q=no"}),
    "principal": ({"path": "/mesh", "principal": ORDER}, {"principal": ORDER + "-x"}),
    "token": ({"path": ITEMS, "token": "staff"}, {"token": "customer"}),
    "token-absent": ({"path": "/orders", "token": "staff"}, {"token": None}),
    "tenancy-header": (
        {"path": "/orders", "token": "staff", "headers": {"x-tenant-id": "acme"}},
        {"headers": {"x-tenant-id": "globex"}},
    ),
    "read-header": (
        {**REFUND, "headers": {"x-refund-amount": "100"}},
        {"headers": {"x-refund-amount": "900"}},
    ),
    "read-header-absent": ({**REFUND, "headers": {"x-refund-amount": "100"}}, {"headers": {}}),
    "certificate": ({"path": "/search?q=ok", "certificate": "good"}, {"certificate": "revoked"}),
    "source-address": (NETWORK, {"source": ("10.0.0.8", 41234)}),
    "source-port": (NETWORK, {"source": ("10.0.0.7", 41235)}),
    "destination-address": (NETWORK, {"destination": ("10.0.0.1", 8080)}),
    "destination-port": (NETWORK, {"destination": ("10.0.0.9", 8081)}),
    "destination-principal": (
        NETWORK,
        {"destination_principal": "spiffe://cluster.local/ns/x/sa/api"},
    ),
    "scheme": (NETWORK, {"scheme": "http"}),
    "protocol": (NETWORK, {"protocol": "HTTP/1.1"}),
    "context": (NETWORK, {"context": {"zone": "us"}}),
}


def _request(fields: dict[str, Any], key: SigningKey, certs: tuple[Issued, Issued]) -> Any:
    """``request(**fields)`` with the token and certificate named by a word."""
    fields = dict(fields)
    token = fields.pop("token", None)
    if token == "staff":
        fields["token"] = staff(key)
    elif token == "customer":
        fields["token"] = key.token(sub="bob", tenant="acme")
    certificate = fields.pop("certificate", None)
    if certificate is not None:
        fields["certificate"] = certs[0] if certificate == "revoked" else certs[1]
    return request(**fields)


@pytest.mark.parametrize("part", list(PAIRS), ids=list(PAIRS))
def test_every_key_part_matters(
    snapshot: Snapshot, key: SigningKey, certs: tuple[Issued, Issued], part: str
) -> None:
    base, change = PAIRS[part]
    first, second = _request(base, key, certs), _request({**base, **change}, key, certs)
    expected = [fresh(snapshot, first), fresh(snapshot, second)]
    assert expected[0].allowed and not expected[1].allowed
    cache = DecisionCache(100, 60.0)
    served = [decided(cache, snapshot, message) for message in (first, second, first, second)]
    assert [decision for decision, _ in served] == expected * 2
    assert [hit for _, hit in served] == [False, False, True, True]


def test_an_entry_lives_at_most_the_ttl(snapshot: Snapshot, key: SigningKey) -> None:
    cache = DecisionCache(100, 2.0)
    message = request(path=ITEMS, token=staff(key))
    assert decided(cache, snapshot, message) == (fresh(snapshot, message), False)
    assert decided(cache, snapshot, message, NOW + timedelta(seconds=1.999))[1]
    assert not decided(cache, snapshot, message, NOW + timedelta(seconds=2))[1]


def test_never_past_the_token_expiry_even_inside_the_leeway(
    snapshot: Snapshot, key: SigningKey
) -> None:
    cache = DecisionCache(100, 60.0)
    message = request(path=ITEMS, token=key.token(ttl=2, sub="a", roles=["staff"], tenant="acme"))
    assert decided(cache, snapshot, message)[0].allowed
    assert decided(cache, snapshot, message, NOW + timedelta(seconds=1.5))[1]
    later = NOW + timedelta(seconds=3)  # past exp, inside the issuer's 30 s leeway
    decision, hit = decided(cache, snapshot, message, later)
    assert (decision.allowed, hit) == (True, False)
    assert cache.entries == 0  # decided again, and not kept: it would outlive the token
    beyond = NOW + timedelta(seconds=40)
    assert decided(cache, snapshot, message, beyond)[0].reason is Reason.INVALID_TOKEN


def test_never_past_the_end_of_a_lockdown(snapshot: Snapshot, key: SigningKey) -> None:
    ends = NOW + timedelta(seconds=5)
    snapshot = locked(snapshot, expires=ends)
    cache = DecisionCache(100, 60.0)
    message = request(path=ITEMS, token=staff(key))
    assert decided(cache, snapshot, message)[0].reason is Reason.LOCKDOWN
    assert decided(cache, snapshot, message, ends - timedelta(milliseconds=1)) == (
        fresh(snapshot, message),
        True,
    )
    decision, hit = decided(cache, snapshot, message, ends)
    assert (decision.reason, hit) == (Reason.ALLOWED, False)
    # An allow made while another tenant's lockdown lasts also ends with it.
    other = locked(load_bundle_like(snapshot), expires=ends, tenant="globex")
    assert decided(cache, other, message)[0].allowed
    assert not decided(cache, other, message, ends)[1]


def load_bundle_like(snapshot: Snapshot) -> Snapshot:
    return dataclasses.replace(snapshot, lockdowns=())


def test_another_snapshot_object_starts_empty(snapshot: Snapshot, key: SigningKey) -> None:
    cache = DecisionCache(100, 60.0)
    message = request(path=ITEMS, token=staff(key))
    decided(cache, snapshot, message)
    assert decided(cache, snapshot, message)[1]
    same_content = dataclasses.replace(snapshot)  # e.g. a lockdown released: a new object
    assert decided(cache, same_content, message) == (fresh(snapshot, message), False)
    assert cache.entries == 1
    assert not decided(cache, snapshot, message)[1]  # back to the first: it starts over too


def test_invalid_tokens_and_cel_errors_are_never_kept(
    snapshot: Snapshot, key: SigningKey, tmp_path: Path
) -> None:
    cache = DecisionCache(100, 60.0)
    impostor = SigningKey.generate(tmp_path)  # the same kid, another key
    bad = request(path=ITEMS, token=impostor.token(sub="a", roles=["staff"], tenant="acme"))
    broken = request(path="/broken", headers={"x-count": "many"})
    for message, reason in ((bad, Reason.INVALID_TOKEN), (broken, Reason.NO_MATCH)):
        for _ in range(2):
            decision, hit = decided(cache, snapshot, message)
            assert (decision.reason, hit) == (reason, False)
    assert decided(cache, snapshot, broken)[0].cel_errors == ("shop/broken",)
    assert (cache.entries, cache.hits, cache.misses) == (0, 0, 5)


def test_a_lockdown_over_a_token_that_did_not_verify_is_not_kept(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    # Locked down before the token is looked at: once the key is known the token
    # would count (its tenant), so the decision may change with a key refresh.
    snapshot = locked(snapshot, tenant="")
    cache = DecisionCache(100, 60.0)
    stranger = SigningKey.generate(tmp_path, kid="unknown")
    message = request(path="/orders", token=stranger.token(sub="a", tenant="acme"))
    assert decided(cache, snapshot, message)[0].reason is Reason.LOCKDOWN
    assert not decided(cache, snapshot, message)[1]
    assert cache.entries == 0


def test_the_bound_holds_and_the_oldest_go_first(snapshot: Snapshot) -> None:
    cache = DecisionCache(5, 60.0)
    messages = [request(path=f"/search?q=ok&n={n}") for n in range(40)]
    for message in messages:
        decided(cache, snapshot, message)
        assert cache.entries <= 5
    assert (cache.entries, cache.evictions) == (5, 35)
    assert all(decided(cache, snapshot, message)[1] for message in messages[-5:])
    assert not decided(cache, snapshot, messages[0])[1]


def test_requests_the_key_cannot_describe_bypass_the_cache(snapshot: Snapshot) -> None:
    cache = DecisionCache(100, 60.0)
    upper = request(path="/search?q=ok", headers={"X-Tenant-Id": "acme"})
    tcp = request(tcp=True)
    header_map = request(path="/search?q=ok")
    http = header_map.attributes.request.http
    for name, value in http.headers.items():
        http.header_map.headers.add(key=name, value=value)
    http.ClearField("headers")
    no_path = request(path="/search?q=ok")
    no_path.attributes.request.http.path = ""
    for message in (upper, tcp, header_map, no_path) * 2:
        assert decided(cache, snapshot, message) == (fresh(snapshot, message), False)
    assert (cache.bypasses, cache.misses, cache.entries) == (8, 0, 0)


@pytest.mark.parametrize("stage", ["lookup", "store"])
def test_a_failing_cache_is_bypassed_never_trusted(
    snapshot: Snapshot, key: SigningKey, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DecisionCache(100, 60.0)

    def broken(*args: Any) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(cache, stage, broken)
    for message in (request(path=ITEMS, token=staff(key)), request(path="/admin/x")):
        decision, attributes, _, cached = decide_through(
            cache, snapshot, message, NOW, attributes_wanted=False
        )
        assert (decision, cached) == (fresh(snapshot, message), False)
        assert attributes == from_check_request(message)
