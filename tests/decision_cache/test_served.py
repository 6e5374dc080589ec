"""The decision cache in the real server, over gRPC: hits answer like decide, policy
changes (reload, rollback, lockdown on and off) are never answered from an older
snapshot's entries, and a remote issuer's key rotation lapses cached allows."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import json_format

from authz.admin import AdminConfig, start_admin
from authz.audit import AuditConfig
from authz.decision_cache import DecisionCache
from authz.policy.lockdown import Lockdown
from authz.server import AuthorizationService
from tests.admin.client import TOKEN, Client
from tests.admin.conftest import make_store
from tests.decision_cache.bundle import request
from tests.engine.shop import install_shop
from tests.identity.idp import IdentityProvider
from tests.identity.signing import ec_key, rsa_key
from tests.identity.test_remote_keys_served import SETTINGS, bundle_for, live
from tests.policy.bundles import SigningKey, policy
from tests.server.serving import Server, live_token, serving

ITEMS = "/vendors/acme/items/1"


async def outcome(server: Server, message: Any) -> dict[str, Any]:
    """The decision metadata of a Check, without its (always new) decision id."""
    response = await server.stub.Check(message)
    metadata: dict[str, Any] = json_format.MessageToDict(response.dynamic_metadata)
    assert metadata.pop("decision_id")
    return {"code": response.status.code, **metadata}


def cache_of(server: Server) -> DecisionCache:
    cache = server.runtime.decision_cache
    assert cache is not None
    return cache


async def test_off_means_no_cache_at_all(bundle: Path) -> None:
    async with serving(bundle) as server:
        assert server.runtime.decision_cache is None


async def test_a_hit_answers_like_a_decision_and_is_logged_as_cached(
    bundle: Path, key: SigningKey, tmp_path: Path
) -> None:
    log = tmp_path / "decisions.log"
    audit = AuditConfig(decision_log=str(log))
    token = live_token(key, sub="alice", roles=["staff"], tenant="acme")
    message = request(path=ITEMS, token=token, headers={"x-authz-tenant": "globex"})
    async with serving(bundle, audit=audit, decision_cache=100) as server:
        first = await outcome(server, message)
        second = await outcome(server, message)
        response = await server.stub.Check(message)
        assert cache_of(server).hits == 2
    assert first == second
    assert first["reason"] == "allowed"
    assert response.ok_response.headers_to_remove == []  # x-authz-tenant is overwritten
    headers = {h.header.key: h.header.value for h in response.ok_response.headers}
    assert headers["x-authz-tenant"] == "acme"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [record.get("cached", False) for record in records] == [False, True, True]
    assert len({record["decision_id"] for record in records}) == 3
    # The observers get the request on a hit too: the records differ only in these.
    own = {"decision_id", "time", "latency_us", "cached"}
    same = [{k: v for k, v in record.items() if k not in own} for record in records]
    assert same[0] == same[1] == same[2]
    assert (same[0]["path"], same[0]["subject"]) == (ITEMS, "alice")


async def test_a_client_sent_x_authz_header_is_removed_on_a_hit(bundle: Path) -> None:
    message = request(path="/search?q=ok", headers={"x-authz-foo": "evil"})
    async with serving(bundle, decision_cache=100) as server:
        for _ in range(2):
            response = await server.stub.Check(message)
            assert list(response.ok_response.headers_to_remove) == ["x-authz-foo"]
        assert cache_of(server).hits == 1


async def test_a_bundle_reading_the_clock_is_never_served_from_the_cache(
    tmp_path: Path, key: SigningKey
) -> None:
    shop = install_shop(tmp_path / "shop", key)  # its rule public/timed reads request.time
    message = request(path="/timed", host="api.shop.test")
    async with serving(shop, decision_cache=100) as server:
        outcomes = [await outcome(server, message) for _ in range(3)]
        cache = cache_of(server)
        assert (cache.hits, cache.misses, cache.bypasses) == (0, 0, 3)
        assert "reads request.time" in cache.uncacheable
    assert outcomes[0]["reason"] == "allowed"
    assert outcomes[0] == outcomes[1] == outcomes[2]


async def test_reload_rollback_and_lockdowns_are_never_answered_from_older_entries(
    tmp_path: Path, bundle: Path, key: SigningKey
) -> None:
    directory = tmp_path / "bundle"
    shutil.copytree(bundle, directory)
    message = request(path="/search?q=ok")
    async with serving(directory, decision_cache=100, watch=False) as server:
        store, reloader = server.runtime.store, server.runtime.reloader
        first = store.active_version

        async def reason() -> str:
            found = await outcome(server, message)
            return str(found["reason"])

        assert [await reason(), await reason()] == ["allowed", "allowed"]  # the second a hit
        (directory / "guard.yaml").write_text(
            policy("guard", "- name: no-search\n  action: DENY\n  to: [{paths: [/search]}]")
        )
        assert await reloader.reload_now()
        assert [await reason(), await reason()] == ["denied", "denied"]
        store.rollback(first)
        assert [await reason(), await reason()] == ["allowed", "allowed"]
        store.lock(Lockdown("incident", "", "test", None, None, None), "test")
        assert [await reason(), await reason()] == ["lockdown", "lockdown"]
        assert store.release("incident", "test")
        assert [await reason(), await reason()] == ["allowed", "allowed"]
        assert cache_of(server).hits == 5


async def test_a_key_rotation_at_the_issuer_lapses_cached_allows(tmp_path: Path) -> None:
    static = ec_key("static-1", ec.SECP256R1(), "ES256")
    with IdentityProvider(tmp_path, rsa_key("k1")) as idp:
        directory = bundle_for(tmp_path, idp, static)
        async with serving(directory, keys=SETTINGS, decision_cache=100) as server:
            old = live(idp.keys[0], idp.issuer, roles=["reader"])
            message = request(path="/items", token=old)
            assert [(await outcome(server, message))["reason"] for _ in range(2)] == [
                "allowed",
                "allowed",
            ]
            assert cache_of(server).hits == 1
            new = ec_key("k2", ec.SECP256R1(), "ES256")
            idp.keys = [new]  # k1 retired, k2 published; a k2 token makes us fetch them
            fresh = request(path="/items", token=live(new, idp.issuer, roles=["reader"]))
            assert (await outcome(server, fresh))["reason"] == "allowed"
            assert (await outcome(server, message))["reason"] == "invalid_token"
            assert cache_of(server).hits == 1


@pytest.mark.parametrize("flood", [200])
async def test_the_bound_holds_under_a_flood_of_distinct_requests(bundle: Path, flood: int) -> None:
    async with serving(bundle, decision_cache=16) as server:
        for n in range(flood):
            await server.stub.Check(request(path=f"/search?q=ok&n={n}&t={time.monotonic_ns()}"))
        cache = cache_of(server)
        assert cache.entries == 16
        assert cache.evictions == flood - 16


async def test_the_admin_status_shows_the_cache(bundle: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    store, reloader = make_store(bundle)
    cache = DecisionCache(100, 2.0)
    service = AuthorizationService(store, cache=cache)
    for _ in range(3):
        service.respond(request(path="/search?q=ok"))
    config = AdminConfig(listen="127.0.0.1:0", token_file=token_file)
    server = await start_admin(store, reloader, config, decision_cache=cache)
    try:
        async with aiohttp.ClientSession() as session:
            status = await Client(session, f"http://127.0.0.1:{server.port}").ok(
                "GET", "/v1/status"
            )
    finally:
        await server.stop()
    assert status["decision_cache"] == {
        "size": 100,
        "ttl_seconds": 2.0,
        "entries": 1,
        "hits": 2,
        "misses": 1,
        "bypasses": 0,
        "evictions": 0,
        "uncacheable": "",
    }
