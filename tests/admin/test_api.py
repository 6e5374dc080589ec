"""The admin API over a real store: status, reload, rollback, unpin, and its error answers."""

from __future__ import annotations

import logging

import pytest

from authz.admin import MAX_BODY_BYTES
from authz.policy.bundle import load_bundle
from tests.admin.client import TOKEN
from tests.admin.conftest import Admin

EXTRA_POLICY = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: extra}
spec:
  rules: [{name: docs, to: [{methods: [GET], paths: [/docs]}]}]
"""


async def test_status_shows_what_is_served(admin: Admin) -> None:
    body = await admin.client.ok("GET", "/v1/status")
    version = load_bundle(admin.bundle).version
    assert body["active_version"] == body["bundle_version"] == version
    assert body["pinned"] is None
    assert [entry["version"] for entry in body["history"]] == [version]
    assert body["history"][0]["applied"] is True
    assert "platform/public.yaml" in body["history"][0]["files"]
    assert body["history"][0]["loaded_at"].endswith("Z")
    assert body["lockdowns"] == {"bundle": [], "runtime": []}
    assert body["issuers"] == [{"name": "test-idp", "issuer": "https://idp.test", "keys": 1}]
    assert body["reloads"] == {"successes": 0, "failures": 0}


async def test_reload_applies_a_changed_bundle(admin: Admin) -> None:
    first = admin.store.active_version
    (admin.bundle / "extra.yaml").write_text(EXTRA_POLICY)
    body = await admin.client.ok("POST", "/v1/reload", {})
    assert body["reloaded"] is True
    assert body["active_version"] == load_bundle(admin.bundle).version != first
    status = await admin.client.ok("GET", "/v1/status")
    assert [entry["version"] for entry in status["history"]] == [body["active_version"], first]
    assert status["reloads"]["successes"] == 1


async def test_reload_of_an_invalid_bundle_keeps_the_version(admin: Admin) -> None:
    first = admin.store.active_version
    (admin.bundle / "broken.yaml").write_text("apiVersion: authz/v1\nkind: Nope\n")
    answer = await admin.client.call("POST", "/v1/reload", {})
    assert answer.status == 422
    assert answer.body["error"] == "bundle_invalid"
    assert answer.body["active_version"] == first == admin.store.active_version
    assert any("broken.yaml:2:7: kind: unknown kind" in line for line in answer.body["problems"])
    assert admin.reloader.failures == 1


async def test_rollback_pins_and_unpin_follows_the_directory_again(admin: Admin) -> None:
    first = admin.store.active_version
    (admin.bundle / "extra.yaml").write_text(EXTRA_POLICY)
    second = (await admin.client.ok("POST", "/v1/reload", {}))["active_version"]

    body = await admin.client.ok("POST", "/v1/rollback", {"version": first})
    assert body == {"rolled_back": first, "active_version": first, "pinned": first}
    assert admin.store.current.version == first

    body = await admin.client.ok("POST", "/v1/unpin", {})
    assert body == {"unpinned": True, "active_version": second, "pinned": None}
    assert admin.store.current.version == second


async def test_a_reload_while_pinned_loads_but_does_not_apply(admin: Admin) -> None:
    first = admin.store.active_version
    await admin.client.ok("POST", "/v1/rollback", {"version": first})
    (admin.bundle / "extra.yaml").write_text(EXTRA_POLICY)
    body = await admin.client.ok("POST", "/v1/reload", {})
    assert body["loaded_version"] == load_bundle(admin.bundle).version
    assert (body["active_version"], body["pinned"]) == (first, first)
    status = await admin.client.ok("GET", "/v1/status")
    assert [entry["applied"] for entry in status["history"]] == [False, True]


async def test_rollback_to_an_unknown_version_is_404(admin: Admin) -> None:
    answer = await admin.client.call("POST", "/v1/rollback", {"version": "sha256:nope"})
    assert answer.status == 404
    assert answer.body["error"] == "unknown_version"
    assert answer.body["pinned"] is None


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        pytest.param("POST", "/v1/status", {}, 405, "method_not_allowed", id="post-status"),
        pytest.param("GET", "/v1/reload", None, 405, "method_not_allowed", id="get-reload"),
        pytest.param("PUT", "/v1/lockdown/x", {}, 405, "method_not_allowed", id="put-lockdown"),
        pytest.param("GET", "/v1/nothing", None, 404, "not_found", id="unknown-path"),
        pytest.param("POST", "/v1/rollback", {}, 400, "bad_request", id="rollback-no-version"),
        pytest.param(
            "POST", "/v1/rollback", {"version": 7}, 400, "bad_request", id="rollback-not-string"
        ),
        pytest.param(
            "POST", "/v1/rollback", {"version": "v", "x": 1}, 400, "bad_request", id="extra-field"
        ),
        pytest.param("POST", "/v1/reload", [], 400, "bad_json", id="not-an-object"),
        pytest.param("DELETE", "/v1/lockdown/none", None, 404, "unknown_lockdown", id="release"),
    ],
)
async def test_error_answers(
    admin: Admin, method: str, path: str, body: object, status: int, error: str
) -> None:
    answer = await admin.client.call(method, path, body)
    assert answer.status == status
    assert answer.body["error"] == error
    assert answer.body["message"]
    assert answer.body["active_version"] == admin.store.active_version


async def test_405_names_the_allowed_method(admin: Admin) -> None:
    answer = await admin.client.call("GET", "/v1/unpin")
    assert answer.headers["Allow"] == "POST"


async def test_bad_json_is_400_with_a_message(admin: Admin) -> None:
    answer = await admin.client.call(
        "POST", "/v1/rollback", data=b"{version:", headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400
    assert answer.body["error"] == "bad_json"
    assert answer.body["message"].startswith("the body is not JSON")


async def test_a_body_not_sent_as_json_is_refused(admin: Admin) -> None:
    # A cross-site form post (text/plain) must not be able to unpin a server.
    answer = await admin.client.call(
        "POST", "/v1/unpin", data=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert answer.status == 415


async def test_the_body_size_is_limited(admin: Admin) -> None:
    huge = {"name": "x", "reason": "r" * MAX_BODY_BYTES}
    answer = await admin.client.call("POST", "/v1/lockdown", huge)
    assert answer.status == 413
    assert admin.store.lockdowns == ()


async def test_every_call_is_logged_with_caller_and_outcome(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authz.admin")
    await admin.client.ok("GET", "/v1/status")
    await admin.client.call("POST", "/v1/rollback", {"version": "sha256:nope"})
    await admin.client.call("GET", "/v1/status", token="wrong-token-wrong-token")
    lines = [record.getMessage() for record in caplog.records if record.name == "authz.admin"]
    assert lines == [
        "admin GET /v1/status by token: 200 status",
        "admin POST /v1/rollback by token: 404 unknown_version",
        "admin GET /v1/status by -: 401 unauthorized",
    ]
    assert TOKEN not in caplog.text
    assert "wrong-token" not in caplog.text
