"""Run-time lockdowns through the admin API, checked with ``decide`` on the served snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from authz.decision import Reason
from authz.engine import decide
from authz.policy.lockdown import Lockdown
from authz.policy.matchers import StringMatcher
from tests.admin.conftest import Admin
from tests.engine.checks import attributes

BREAK_GLASS = "spiffe://cluster.local/ns/ops/sa/break-glass"


def _reason(admin: Admin, path: str, tenant: str = "", principal: str | None = None) -> Reason:
    headers = {"x-tenant-id": tenant} if tenant else {}
    request = attributes(path=path, headers=headers, principal=principal)
    return decide(admin.store.current, request, datetime.now(UTC)).reason


async def test_lock_a_tenant_verify_and_release(admin: Admin) -> None:
    assert _reason(admin, "/catalog/shoes", "acme") is Reason.ALLOWED
    body = await admin.client.ok(
        "POST",
        "/v1/lockdown",
        {
            "name": "inc-4711",
            "reason": "credential leak, INC-4711",
            "tenant": "acme",
            "exemptPaths": ["/healthz", "/status/{**}"],
            "exemptPrincipals": [BREAK_GLASS],
        },
    )
    assert body["lockdown"] == {
        "name": "inc-4711",
        "tenant": "acme",
        "reason": "credential leak, INC-4711",
        "exemptPaths": ["/healthz", "/status/{**}"],
        "exemptPrincipals": ["cluster.local/ns/ops/sa/break-glass"],
        "expires": None,
    }
    assert _reason(admin, "/catalog/shoes", "acme") is Reason.LOCKDOWN
    assert _reason(admin, "/catalog/shoes", "globex") is Reason.ALLOWED
    assert _reason(admin, "/healthz", "acme") is Reason.ALLOWED
    assert _reason(admin, "/catalog/shoes", "acme", BREAK_GLASS) is Reason.ALLOWED

    status = await admin.client.ok("GET", "/v1/status")
    (runtime,) = status["lockdowns"]["runtime"]
    assert runtime["actor"] == "token"
    assert runtime["name"] == "inc-4711"
    assert status["lockdowns"]["bundle"] == []

    released = await admin.client.ok("DELETE", "/v1/lockdown/inc-4711")
    assert released["released"] == "inc-4711"
    assert _reason(admin, "/catalog/shoes", "acme") is Reason.ALLOWED
    assert admin.store.lockdowns == ()


async def test_lockdown_of_everything_with_expiry(admin: Admin) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    body = await admin.client.ok(
        "POST",
        "/v1/lockdown",
        {"name": "all", "reason": "r", "expires": expires.isoformat().replace("+00:00", "Z")},
    )
    assert body["lockdown"]["tenant"] is None
    assert body["lockdown"]["expires"] == expires.isoformat().replace("+00:00", "Z")
    assert _reason(admin, "/catalog/shoes") is Reason.LOCKDOWN


async def test_a_bundle_lockdown_is_shown_and_cannot_be_released_here(admin: Admin) -> None:
    (admin.bundle / "lockdown.yaml").write_text(
        "apiVersion: authz/v1\nkind: Lockdown\nmetadata: {name: declared}\n"
        "spec: {reason: planned maintenance, tenant: globex, exemptPaths: ['/healthz']}\n"
    )
    await admin.client.ok("POST", "/v1/reload", {})
    status = await admin.client.ok("GET", "/v1/status")
    assert [entry["name"] for entry in status["lockdowns"]["bundle"]] == ["declared"]
    answer = await admin.client.call("DELETE", "/v1/lockdown/declared")
    assert answer.status == 404
    assert "declared in the bundle" in answer.body["message"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param({"name": "x"}, "missing required field 'reason'", id="no-reason"),
        pytest.param({"reason": "r"}, "name: must be lower-case", id="no-name"),
        pytest.param({"name": "Bad Name", "reason": "r"}, "name: must be lower-case", id="name"),
        pytest.param({"name": "x", "reason": ""}, "reason: ", id="empty-reason"),
        pytest.param(
            {"name": "x", "reason": "r", "exemptPaths": ["/a*b"]},
            "exemptPaths[0]: '*' may only be",
            id="bad-pattern",
        ),
        pytest.param(
            {"name": "x", "reason": "r", "exemptPaths": ["/a/{**}/b"]},
            "exemptPaths[0]: {**} may only be the last segment",
            id="bad-template",
        ),
        pytest.param(
            {"name": "x", "reason": "r", "expires": "2099-01-01T00:00:00"},
            "expires: needs a time zone",
            id="naive-expiry",
        ),
        pytest.param(
            {"name": "x", "reason": "r", "expires": "tomorrow"},
            "expires: must be an RFC 3339 time",
            id="not-a-time",
        ),
        pytest.param(
            {"name": "x", "reason": "r", "expires": "2020-01-01T00:00:00Z"},
            "expires: is in the past",
            id="past-expiry",
        ),
        pytest.param({"name": "x", "reason": "r", "tenants": "acme"}, "unknown field", id="typo"),
        pytest.param({"name": "x", "reason": "r", "tenant": 7}, "tenant: must be a string", id="t"),
    ],
)
async def test_an_invalid_lockdown_is_400(admin: Admin, body: dict[str, Any], problem: str) -> None:
    answer = await admin.client.call("POST", "/v1/lockdown", body)
    assert answer.status == 400, answer.body
    assert answer.body["error"] == "invalid_lockdown"
    assert any(problem in line for line in answer.body["problems"]), answer.body
    assert admin.store.lockdowns == ()


@pytest.mark.parametrize(
    "patterns",
    [
        pytest.param(["/healthz", "/api/*", "*.json", "*"], id="istio"),
        pytest.param(["/a/{*}/b", "/x.y/{**}", "/{**}", "/[v1]+/{*}"], id="templates"),
    ],
)
async def test_status_shows_patterns_as_written(admin: Admin, patterns: list[str]) -> None:
    matcher = StringMatcher.build(patterns, templates=True)
    lockdown = Lockdown("p", "", "r", matcher, None, None)
    admin.store.lock(lockdown, "test")
    status = await admin.client.ok("GET", "/v1/status")
    assert sorted(status["lockdowns"]["runtime"][0]["exemptPaths"]) == sorted(patterns)
