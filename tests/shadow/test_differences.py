"""Shadow rollout against the real server: the active bundle decides, the shadow is compared."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from authz.shadow import Shadow
from tests.engine.checks import check_request
from tests.lifecycle.running import Live, running, until
from tests.policy.bundles import SigningKey
from tests.server.serving import live_token
from tests.shadow import bundles

PERMISSION_DENIED = 7
READ, WRITE = "acme-vendor/staff-read", "acme-vendor/staff-write"
STAFF = {"sub": "alice", "tenant": "acme", "roles": ["vendor:staff"]}


def _shadow(live: Live) -> Shadow:
    shadow = live.runtime.shadow
    assert shadow is not None
    return shadow


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The shadow's difference lines, parsed (each must be one JSON line)."""
    messages = [r.getMessage() for r in caplog.records if r.name == "authz.shadow"]
    lines = [m for m in messages if m.startswith("{")]
    assert all("\n" not in line for line in lines)
    return [json.loads(line) for line in lines]


async def _check(live: Live, request: Any) -> tuple[int, dict[str, str]]:
    """One Check: the gRPC status code and the decision metadata."""
    response = await live.stub.Check(request, timeout=5)
    fields = response.dynamic_metadata.fields
    return response.status.code, {name: value.string_value for name, value in fields.items()}


async def _settled(shadow: Shadow, calls: int) -> None:
    """Wait until the shadow has finished ``calls`` evaluations, good or bad."""
    await until(lambda: shadow.evaluated + shadow.errors + shadow.dropped >= calls)


@pytest.mark.parametrize(
    ("method", "path", "code", "kind", "active_rule", "shadow_rule"),
    [
        ("GET", f"{bundles.ITEMS}/1", 0, "narrowed", READ, None),
        ("PUT", f"{bundles.ITEMS}/1", PERMISSION_DENIED, "widened", None, WRITE),
    ],
    ids=["narrowed", "widened"],
)
async def test_the_active_bundle_decides_and_the_difference_is_logged(
    active: Path,
    candidate: Path,
    key: SigningKey,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    code: int,
    kind: str,
    active_rule: str | None,
    shadow_rule: str | None,
) -> None:
    caplog.set_level(logging.INFO, logger="authz")
    token = live_token(key, **STAFF)
    async with running(active, shadow_policies=candidate) as live:
        shadow = _shadow(live)
        status, metadata = await _check(live, check_request(method=method, path=path, token=token))
        assert status == code  # enforced: the active bundle
        await _settled(shadow, 1)
    assert shadow.counters() == {
        "evaluated": 1,
        "differences": 1,
        "widened": int(kind == "widened"),
        "narrowed": int(kind == "narrowed"),
        "errors": 0,
        "dropped": 0,
    }
    allowed = code == 0
    assert _lines(caplog) == [
        {
            "event": "shadow_difference",
            "kind": kind,
            "decision_id": metadata["decision_id"],
            "request": {
                "method": method,
                "host": "api.shop.test",
                "path": path,
                "source_principal": "",
                "token_subject": "alice",
                "token_tenant": "acme",
            },
            "active": {
                "allowed": allowed,
                "status": 200 if allowed else 403,
                "reason": "allowed" if allowed else "no_match",
                "rule": active_rule,
                "tenant": "acme",
                "policy_version": bundles.version(active),
            },
            "shadow": {
                "allowed": not allowed,
                "status": 403 if allowed else 200,
                "reason": "no_match" if allowed else "allowed",
                "rule": shadow_rule,
                "tenant": "acme",
                "policy_version": bundles.version(candidate),
            },
        }
    ]
    widened = [r for r in caplog.records if r.name == "authz.shadow" and "widened" in r.msg]
    assert all(r.levelno == logging.WARNING for r in widened)


async def test_identical_bundles_make_no_difference(
    active: Path, tmp_path: Path, key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authz.shadow")
    same = bundles.copy(active, tmp_path / "same")
    token = live_token(key, **STAFF)
    requests = [
        check_request(path=f"{bundles.ITEMS}/1", token=token),  # allowed
        check_request(method="PUT", path=f"{bundles.ITEMS}/1", token=token),  # no_match
        check_request(path=f"{bundles.ITEMS}/1"),  # missing_token
        check_request(path=f"{bundles.ITEMS}/1", token="not-a-jwt"),  # invalid_token
        check_request(path="/api/v1/vendors/../x"),  # bad_path
        check_request(path="/healthz"),
        check_request(tcp=True),
    ]
    async with running(active, shadow_policies=same) as live:
        shadow = _shadow(live)
        assert shadow.store.active_version == live.store.active_version
        for request in requests:
            await _check(live, request)
        await _settled(shadow, len(requests))
    assert shadow.counters()["evaluated"] == len(requests)
    assert shadow.differences == shadow.errors == 0
    assert _lines(caplog) == []


@pytest.mark.parametrize("shadow_dir", ["broken", "missing"])
async def test_an_unusable_shadow_bundle_is_logged_and_the_server_serves(
    active: Path,
    tmp_path: Path,
    key: SigningKey,
    caplog: pytest.LogCaptureFixture,
    shadow_dir: str,
) -> None:
    caplog.set_level(logging.INFO, logger="authz")
    directory = tmp_path / shadow_dir
    if shadow_dir == "broken":
        bundles.broken(directory, key)
    token = live_token(key, **STAFF)
    async with running(active, shadow_policies=directory) as live:
        assert live.runtime.shadow is None
        assert live.runtime.shadow_reloader is None
        status, metadata = await _check(live, check_request(path=f"{bundles.ITEMS}/1", token=token))
        assert (status, metadata["reason"]) == (0, "allowed")
    messages = [r.getMessage() for r in caplog.records if r.name == "authz.shadow"]
    assert any(
        f"shadow bundle {directory} not loaded" in m and "running without shadow" in m
        for m in messages
    )
    if shadow_dir == "broken":
        assert f"  {bundles.BROKEN_ERROR}" in messages
    banner = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving on")]
    assert banner and banner[0].endswith("shadow=off")


async def test_the_shadow_bundle_is_hot_reloaded(
    active: Path, tmp_path: Path, key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authz.shadow")
    directory = bundles.copy(active, tmp_path / "shadow")
    token = live_token(key, **STAFF)
    request = check_request(path=f"{bundles.ITEMS}/1", token=token)
    async with running(active, shadow_policies=directory) as live:
        shadow, reloader = _shadow(live), live.runtime.shadow_reloader
        assert reloader is not None
        enforced = live.store.active_version
        await _check(live, request)
        await _settled(shadow, 1)
        assert shadow.differences == 0

        bundles.replace_policy(directory, bundles.CANDIDATE)
        await until(lambda: shadow.store.active_version == bundles.version(directory))
        assert (await _check(live, request))[0] == 0
        await _settled(shadow, 2)
        assert (shadow.differences, shadow.narrowed) == (1, 1)

        # An invalid edit keeps the last good shadow; the active bundle is untouched.
        bundles.replace_policy(directory, bundles.BROKEN)
        await until(lambda: reloader.failures == 1)
        assert shadow.store.active_version != enforced
        assert live.store.active_version == enforced
        assert live.reloader.successes + live.reloader.failures == 0
    [line] = _lines(caplog)
    assert line["shadow"]["policy_version"] != line["active"]["policy_version"] == enforced


async def test_the_log_line_never_holds_credentials(
    active: Path, candidate: Path, key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = live_token(key, **STAFF)
    request = check_request(
        path=f"{bundles.ITEMS}/1?access_token={token}&q=query-secret",
        token=token,
        headers={"cookie": "session=cookie-secret", "x-api-key": "header-secret"},
    )
    async with running(active, shadow_policies=candidate) as live:
        shadow = _shadow(live)
        assert (await _check(live, request))[0] == 0
        await _settled(shadow, 1)
    assert shadow.narrowed == 1
    [line] = _lines(caplog)
    assert line["request"]["path"] == f"{bundles.ITEMS}/1"
    for secret in (token, token.split(".")[2], "query-secret", "cookie-secret", "header-secret"):
        assert secret not in caplog.text
    assert "authorization" not in caplog.text.lower()


async def test_a_failing_shadow_decision_never_touches_the_response(
    active: Path, candidate: Path, key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authz")
    token = live_token(key, **STAFF)
    request = check_request(path=f"{bundles.ITEMS}/1", token=token)
    async with running(active, shadow_policies=candidate) as live:
        shadow = _shadow(live)
        shadow.store.offer(bundles.exploding(shadow.store.current, token))
        for _ in range(3):
            status, metadata = await _check(live, request)
            assert (status, metadata["reason"]) == (0, "allowed")
        await _settled(shadow, 3)
    assert shadow.counters() == {
        "evaluated": 0,
        "differences": 0,
        "widened": 0,
        "narrowed": 0,
        "errors": 3,
        "dropped": 0,
    }
    failed = [r for r in caplog.records if r.name == "authz.shadow" and r.levelno == logging.ERROR]
    assert len(failed) == 3
    assert "RuntimeError at candidates" in failed[0].getMessage()
    assert "the response was not affected" in failed[0].getMessage()
    assert token not in caplog.text
    assert bundles.EXPLOSION not in caplog.text
