"""/metrics of the real server: Checks counted by decision and reason, their latency, the
served state; the exposition is what promtool accepts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from authz.config import TelemetrySettings
from authz.telemetry.checks import DURATION_BOUNDS_SECONDS
from tests.engine.checks import check_request
from tests.lifecycle.incidents import incident
from tests.policy.bundles import SigningKey
from tests.server.serving import Server, live_token, serving
from tests.telemetry.scrape import promtool, samples, scrape, value

VENDOR_ITEM = "/api/v1/vendors/{tenant}/items/1"


@contextlib.asynccontextmanager
async def metered(bundle: Path, **settings: Any) -> AsyncIterator[tuple[Server, str]]:
    """The real server with ``--metrics-listen 127.0.0.1:0``; it and its /metrics URL."""
    telemetry = TelemetrySettings(metrics_listen="127.0.0.1:0", **settings)
    async with serving(bundle, telemetry=telemetry) as server:
        assert server.runtime.telemetry is not None
        listener = server.runtime.telemetry.listener
        assert listener is not None
        yield server, f"http://127.0.0.1:{listener.port}/metrics"


async def check(server: Server, key: SigningKey, tenant: str, token_tenant: str = "") -> None:
    """A vendor's staff GET of an item of ``tenant``, with a token of ``token_tenant``."""
    token = live_token(key, sub="alice", tenant=token_tenant or tenant, roles=["vendor:staff"])
    await server.stub.Check(check_request(path=VENDOR_ITEM.format(tenant=tenant), token=token))


async def test_checks_are_counted_by_decision_and_reason(bundle: Path, key: SigningKey) -> None:
    async with metered(bundle) as (server, url):
        await check(server, key, "acme")
        await check(server, key, "acme")
        await check(server, key, "globex", token_tenant="acme")
        await server.stub.Check(check_request(path="/", token="not-a-token"))
        text = await scrape(url)

    found = samples(text).items()
    checks = {labels: count for (name, labels), count in found if name == "authz_checks_total"}
    assert checks == {
        frozenset({("decision", "allow"), ("reason", "allowed")}): 2,
        frozenset({("decision", "deny"), ("reason", "cross_tenant")}): 1,
        frozenset({("decision", "deny"), ("reason", "invalid_token")}): 1,
    }
    assert value(text, "authz_policy_version_info", version=server.policy_version) == 1
    assert value(text, "authz_policy_reloads_total", result="success") == 0
    assert value(text, "authz_policy_reloads_total", result="failure") == 0
    assert value(text, "authz_lockdowns_active", tenant="*") == 0


async def test_the_latency_histogram_has_every_check_in_fixed_buckets(
    bundle: Path, key: SigningKey
) -> None:
    async with metered(bundle) as (server, url):
        for _ in range(5):
            await check(server, key, "acme")
        text = await scrape(url)

    name = "authz_check_duration_seconds"
    buckets = [value(text, f"{name}_bucket", le=repr(b)) for b in DURATION_BOUNDS_SECONDS]
    buckets.append(value(text, f"{name}_bucket", le="+Inf"))
    assert buckets == sorted(buckets)  # cumulative
    assert buckets[-1] == value(text, f"{name}_count") == 5
    assert 0 < value(text, f"{name}_sum") < 5 * 10  # seconds: positive, and not nanoseconds
    assert DURATION_BOUNDS_SECONDS[0] == 0.00005 and DURATION_BOUNDS_SECONDS[-1] == 0.01


async def test_tenant_labels_are_capped(bundle: Path, key: SigningKey) -> None:
    async with metered(bundle, metrics_tenant_label=1) as (server, url):
        await check(server, key, "acme")
        await check(server, key, "globex")
        await check(server, key, "initech")
        text = await scrape(url)

    allowed = {"decision": "allow", "reason": "allowed"}
    assert value(text, "authz_checks_total", tenant="acme", **allowed) == 1
    assert value(text, "authz_checks_total", tenant="other", **allowed) == 1  # globex
    # initech is no tenant of the bundle: whatever a path names is capped the same way
    no_match = {"decision": "deny", "reason": "no_match"}
    assert value(text, "authz_checks_total", tenant="other", **no_match) == 1
    assert not any('tenant="globex"' in line for line in text.splitlines())


async def test_lockdowns_and_reloads_are_read_at_scrape_time(bundle: Path, key: SigningKey) -> None:
    async with metered(bundle) as (server, url):
        runtime = server.runtime
        runtime.store.lock(incident("acme-incident", tenant="acme"), "test")
        runtime.store.lock(incident("everything"), "test")
        assert await runtime.reloader.reload_now()
        await check(server, key, "acme")
        text = await scrape(url)

    assert value(text, "authz_lockdowns_active", tenant="acme") == 1
    assert value(text, "authz_lockdowns_active", tenant="*") == 1
    assert value(text, "authz_policy_reloads_total", result="success") == 1
    assert value(text, "authz_checks_total", decision="deny", reason="lockdown") == 1


async def test_promtool_accepts_the_exposition(bundle: Path, key: SigningKey) -> None:
    async with metered(bundle, metrics_tenant_label=5) as (server, url):
        await check(server, key, "acme")
        await server.stub.Check(check_request(path="/", token="not-a-token"))
        text = await scrape(url)

    assert "authz_checks_total" in text
    promtool("check", "metrics", stdin=text)


async def test_without_a_reader_nothing_is_counted(bundle: Path) -> None:
    async with serving(bundle) as server:  # no admin API, no --metrics-listen
        assert server.runtime.telemetry is not None
        assert server.runtime.telemetry.metrics is None
        assert server.runtime.telemetry.observers == ()
