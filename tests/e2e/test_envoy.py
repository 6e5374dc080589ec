"""Through the real Envoy: what clients and upstreams see of our decisions (spec §3, §5, §6).

Paths, roles and hosts come from the example bundle in ``policies/``: acme and globex
vendor staff (``vendor:staff``) read their own orders under
``/api/v1/vendors/{tenant}/orders``, the catalog is public, and each vendor's portal
lives on ``{tenant}.vendors.shop.example.com``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from http import HTTPStatus

import pytest

from tests.e2e.stack import Reply, Stack

ORDERS = "/api/v1/vendors/acme/orders"
GLOBEX_ORDERS = "/api/v1/vendors/globex/orders"
CATALOG = "/api/v1/catalog"
DECISION_ID = re.compile(r"^[0-9A-Za-z_-]{8,}$")
POLICY_VERSION = re.compile(r"sha256:[0-9a-f]{64}")


def assert_denied(reply: Reply, status: HTTPStatus, reason: str) -> None:
    """Our deny response exactly as spec §6 describes it: status, headers, JSON body."""
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    body: dict[str, str] = reply.json()
    assert body == {"error": status.phrase, "reason": reason, "decision_id": body["decision_id"]}
    assert DECISION_ID.match(body["decision_id"])
    assert reply.headers["x-authz-decision-id"] == body["decision_id"]


def test_allowed_request_reaches_upstream_with_trusted_headers(stack: Stack) -> None:
    spoofed = [("x-authz-tenant", "evil"), ("X-Authz-Tenant", "evil2"), ("x-authz-foo", "bar")]

    reply = stack.request(ORDERS, token=stack.tokens["acme-staff"], headers=spoofed)

    assert reply.status == HTTPStatus.OK, reply.body
    assert reply.json()["path"] == ORDERS
    assert reply.upstream_headers("x-authz-tenant") == ["acme"]
    assert reply.upstream_headers("x-authz-subject") == ["alice"]
    assert reply.upstream_headers("x-authz-foo") == []
    [decision_id] = reply.upstream_headers("x-authz-decision-id")
    assert DECISION_ID.match(decision_id)
    [version] = reply.upstream_headers("x-authz-policy-version")
    assert version == bundle_version(stack)


def bundle_version(stack: Stack) -> str:
    """The version ``authz validate`` reports for the bundle the server runs."""
    argv = [sys.executable, "-m", "authz", "validate", str(stack.bundle.path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    match = POLICY_VERSION.search(done.stdout + done.stderr)
    assert match, done.stdout
    return match.group(0)


def test_public_path_strips_spoofed_identity_headers(stack: Stack) -> None:
    spoofed = [("x-authz-subject", "admin"), ("x-authz-tenant", "acme")]

    reply = stack.request(CATALOG, headers=spoofed)

    assert reply.status == HTTPStatus.OK, reply.body
    assert reply.upstream_headers("x-authz-subject") == []
    assert reply.upstream_headers("x-authz-tenant") == []
    assert len(reply.upstream_headers("x-authz-decision-id")) == 1


def test_tenant_from_the_portal_host(stack: Stack) -> None:
    reply = stack.request(
        "/portal", token=stack.tokens["acme-staff"], host="acme.vendors.shop.example.com"
    )

    assert reply.status == HTTPStatus.OK, reply.body
    assert reply.upstream_headers("x-authz-tenant") == ["acme"]


def test_decisions_get_distinct_ids(stack: Stack) -> None:
    replies = [stack.request(ORDERS, token=stack.tokens["acme-staff"]) for _ in range(3)]

    ids = {reply.upstream_headers("x-authz-decision-id")[0] for reply in replies}
    assert len(ids) == 3


def test_no_token_on_protected_path_is_401(stack: Stack) -> None:
    reply = stack.request(ORDERS)

    assert_denied(reply, HTTPStatus.UNAUTHORIZED, "missing_token")
    assert reply.headers["www-authenticate"] == 'Bearer realm="authz"'


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param("eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.", id="alg-none"),
        pytest.param("expired", id="expired"),
        pytest.param("wrong-audience", id="wrong-audience"),
        pytest.param("rogue-key", id="signed-by-untrusted-key"),
    ],
)
def test_invalid_token_is_401(stack: Stack, token: str) -> None:
    reply = stack.request(ORDERS, token=stack.tokens.get(token, token))

    assert_denied(reply, HTTPStatus.UNAUTHORIZED, "invalid_token")
    assert reply.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    ("path", "host", "headers"),
    [
        pytest.param(GLOBEX_ORDERS, "api.shop.example.com", [], id="path"),
        pytest.param("/portal", "globex.vendors.shop.example.com", [], id="host"),
        pytest.param(CATALOG, "api.shop.example.com", [("x-tenant-id", "globex")], id="header"),
        pytest.param(
            "/api/v1/vendors/acme/../globex/orders", "api.shop.example.com", [], id="dot-dot"
        ),
    ],
)
def test_other_tenant_is_403_cross_tenant(
    stack: Stack, path: str, host: str, headers: list[tuple[str, str]]
) -> None:
    reply = stack.request(path, token=stack.tokens["acme-staff"], host=host, headers=headers)

    assert_denied(reply, HTTPStatus.FORBIDDEN, "cross_tenant")


def test_vendor_role_without_tenant_claim_gets_nothing(stack: Stack) -> None:
    reply = stack.request(ORDERS, token=stack.tokens["no-tenant-staff"])

    assert_denied(reply, HTTPStatus.FORBIDDEN, "no_match")


def test_deny_rule_is_403_denied_without_naming_the_rule(stack: Stack) -> None:
    host = "ledger.payment.svc.cluster.local"

    reply = stack.request("/api/v1/payments/p-1", method="DELETE", host=host)

    assert_denied(reply, HTTPStatus.FORBIDDEN, "denied")
    assert b"never-delete" not in reply.body


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{ORDERS}%2F..%2F..%2Fglobex%2Forders", id="encoded-slash"),
        pytest.param(f"{ORDERS}%2f", id="encoded-slash-lower"),
        pytest.param(f"{ORDERS}%5C..", id="encoded-backslash"),
        pytest.param(f"{ORDERS}%00", id="encoded-nul"),
        pytest.param("/api/v1/vendors/acme/../../../../../etc/passwd", id="escapes-root"),
    ],
)
def test_refused_path_is_400_bad_path(stack: Stack, path: str) -> None:
    reply = stack.request(path, token=stack.tokens["acme-staff"])

    assert_denied(reply, HTTPStatus.BAD_REQUEST, "bad_path")


def test_query_string_may_hold_encoded_slashes(stack: Stack) -> None:
    reply = stack.request(f"{ORDERS}?next=%2F..%2Fglobex", token=stack.tokens["acme-staff"])

    assert reply.status == HTTPStatus.OK, reply.body


def test_envoy_sees_decisions_not_errors(stack: Stack) -> None:
    before = stack.ext_authz_stats()

    stack.request(ORDERS, token=stack.tokens["acme-staff"])
    stack.request(GLOBEX_ORDERS, token=stack.tokens["acme-staff"])

    after = stack.ext_authz_stats()
    assert after["ok"] - before["ok"] == 1
    assert after["denied"] - before["denied"] == 1
    assert after.get("error", 0) == before.get("error", 0)


def test_access_log_carries_ext_authz_metadata_of_a_deny(stack: Stack) -> None:
    reply = stack.request(GLOBEX_ORDERS, token=stack.tokens["acme-staff"])
    decision_id = reply.json()["decision_id"]

    line = stack.access_log_line(decision_id)

    assert f'"GET {GLOBEX_ORDERS}" 403 UAEX' in line
    assert f"decision_id={decision_id} reason=cross_tenant rule=- tenant=globex" in line
    assert stack.tokens["acme-staff"] not in stack.access_log.read_text()


def test_access_log_carries_ext_authz_metadata_of_an_allow(stack: Stack) -> None:
    reply = stack.request(f"{ORDERS}?secret=s3cr3t", token=stack.tokens["acme-staff"])
    [decision_id] = reply.upstream_headers("x-authz-decision-id")

    line = stack.access_log_line(decision_id)

    assert f'"GET {ORDERS}" 200 -' in line  # the query string is not logged
    rule = "acme-vendor/staff-read-orders"
    assert f"decision_id={decision_id} reason=allowed rule={rule} tenant=acme" in line


def test_fails_closed_when_authz_server_is_down(stack: Stack) -> None:
    errors_before = stack.ext_authz_stats().get("error", 0)
    stack.authz.stop()
    try:
        reply = stack.request(ORDERS, token=stack.tokens["acme-staff"])
    finally:
        stack.authz.start()
        stack.authz.wait_serving()

    assert reply.status == HTTPStatus.FORBIDDEN
    assert stack.ext_authz_stats()["error"] == errors_before + 1
    assert stack.request(ORDERS, token=stack.tokens["acme-staff"]).status == HTTPStatus.OK
