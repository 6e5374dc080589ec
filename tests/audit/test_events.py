"""Security events from the real server, to a file and to a real webhook receiver."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from authz.audit import AuditConfig, SecurityEvents
from authz.audit.webhook import Webhook
from authz.config import FetchSettings
from authz.identity.remote import KeyFetcher
from authz.identity.tokens import RemoteJwks
from authz.policy.lockdown import Lockdown
from tests.audit.conftest import read_lines
from tests.audit.receiver import receiving, until
from tests.engine.checks import check_request
from tests.policy.bundles import SigningKey
from tests.server.serving import live_token, serving

pytestmark = pytest.mark.asyncio


async def test_bursts_attempts_lockdowns_and_reload_failures(
    tmp_path: Path, bundle: Path, key: SigningKey
) -> None:
    policies = tmp_path / "bundle"
    shutil.copytree(bundle, policies)
    stream = tmp_path / "events.log"
    staff = live_token(key, sub="alice", tenant="acme", roles=["vendor:staff"])
    async with receiving(fail=2) as receiver:
        audit = AuditConfig(
            security_events=str(stream),
            webhook=receiver.url,
            burst_threshold=3,
            burst_window_seconds=600,
        )
        async with serving(policies, audit=audit, watch=False) as server:
            for _ in range(5):  # one burst, not five events
                await server.stub.Check(check_request(path="/me", token="not-a-token"))
            for _ in range(2):
                await server.stub.Check(
                    check_request(path="/api/v1/vendors/globex/items/1", token=staff)
                )
            lockdown = Lockdown("breach", "acme", "incident 7", None, None, None)
            server.runtime.store.lock(lockdown, "oncall")
            (policies / "broken.yaml").write_text("kind: Policy\nspec: [\n")
            assert not await server.runtime.reloader.reload_now("test")
            await until(lambda: len(receiver.events) == 4)

    events = [record for record in read_lines(stream) if record["type"] == "security_event"]
    assert [event["event"] for event in events] == [
        "invalid_token_burst",
        "cross_tenant_attempt",
        "lockdown_on",
        "reload_failed",
    ]
    burst, attempt, locked, failed = events
    assert (burst["count"], burst["source_address"], burst["path"]) == (3, "10.0.0.7", "/me")
    assert (attempt["subject"], attempt["tenant"], attempt["count"]) == ("alice", "globex", 1)
    assert (locked["name"], locked["actor"], locked["tenant"]) == ("breach", "oncall", "acme")
    assert failed["serving"] == server.policy_version and "bundle error" in failed["problem"]
    assert receiver.events == events  # the webhook got the same, after two failures
    assert receiver.requests == 6
    assert "not-a-token" not in stream.read_text() and staff not in stream.read_text()


async def test_the_webhook_retries_with_backoff_then_counts_failures(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-webhook-token\n")
    async with receiving(fail=3) as receiver:
        hook = Webhook(receiver.url, "s3cret-webhook-token", attempts=4, first_retry=0.05)
        SecurityEvents((hook,)).emit("rollback", version="v1", previous="v2")
        await until(lambda: hook.sent == 1)
        assert (hook.retries, hook.failed, receiver.requests) == (3, 0, 4)
        assert receiver.authorizations == ["Bearer s3cret-webhook-token"]
        assert receiver.events[0]["event"] == "rollback"

        receiver.fail = receiver.requests + 10  # every attempt of the next event fails
        hook.offer({"event": "lost"})
        await until(lambda: hook.failed == 1)
        assert hook.sent == 1 and hook.retries == 6
        await _close(hook)


async def test_identity_provider_key_failures_are_events() -> None:
    async with receiving() as receiver:
        hook = Webhook(receiver.url)
        settings = FetchSettings(timeout_seconds=2, min_refresh_seconds=1, refresh_seconds=300)
        fetcher = KeyFetcher(settings, SecurityEvents((hook,)))
        await fetcher.start()
        remote = RemoteJwks("https://idp.example", "https://127.0.0.1:9/jwks.json", None)
        fetcher.source(remote)
        try:
            await until(lambda: bool(receiver.named("idp_keys_failed")))
        finally:
            await fetcher.close()
            await _close(hook)
    event = receiver.named("idp_keys_failed")[0]
    assert (event["issuer"], event["keys_held"]) == ("https://idp.example", 0)


async def _close(hook: Webhook) -> None:
    await asyncio.to_thread(hook.close)
