"""``decide`` on the shop bundle (``shop_bundle/``): every step of spec §5, in order.

Each case is a CheckRequest (built as Envoy sends it), a token by name, and the
expected reason, rule and tenant. Cases are grouped by the step that decides
them; the ``*-beats-*`` cases pin the order of the steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from authz.decision import Decision, Reason
from authz.engine import decide
from authz.policy.bundle import Snapshot
from tests.engine.checks import attributes
from tests.engine.shop import Keys
from tests.policy.bundles import AUDIENCE, ISSUER, ISSUER_YAML, KID, NOW, SigningKey, compile_bundle

PAY = "pay.payments.svc.cluster.local"
ORDER_SERVICE = "spiffe://cluster.local/ns/order/sa/order-service"

TOKENS: dict[str, Callable[[Keys], str]] = {
    "user": lambda k: k.trusted.token(roles=["user"]),
    "no-roles": lambda k: k.trusted.token(),
    "verified": lambda k: k.trusted.token(email_verified=True),
    "unverified": lambda k: k.trusted.token(email_verified=False),
    "tester": lambda k: k.trusted.token(roles=["tester"]),
    "auditor": lambda k: k.trusted.token(roles=["auditor"]),
    "acme-staff": lambda k: k.trusted.token(sub="alice", tenant="acme", roles=["vendor:staff"]),
    "acme-staff-admin": lambda k: k.trusted.token(
        sub="root", tenant="acme", roles=["vendor:staff", "platform:admin"]
    ),
    "globex-admin": lambda k: k.trusted.token(
        sub="gadmin", tenant="globex", roles=["platform:admin", "vendor:staff"]
    ),
    "staff-no-tenant": lambda k: k.trusted.token(roles=["vendor:staff"]),
    "platform-admin": lambda k: k.trusted.token(sub="ops", roles=["platform:admin"]),
    # --- invalid (spec §5 step 4) ---
    "expired": lambda k: k.trusted.token(
        tenant="acme", roles=["vendor:staff"], now=_ago(400), ttl=300
    ),
    "expired-within-leeway": lambda k: k.trusted.token(now=_ago(320), ttl=300),
    "not-yet-valid": lambda k: k.trusted.token(nbf=int(NOW.timestamp()) + 120),
    "bad-signature": lambda k: k.impostor.token(roles=["platform:admin"]),
    "bad-signature-acme": lambda k: k.impostor.token(tenant="acme", roles=["vendor:staff"]),
    "wrong-aud-acme": lambda k: k.trusted.token(aud="other-api", tenant="acme"),
    "unknown-iss-acme": lambda k: k.trusted.token(iss="https://evil.test", tenant="acme"),
    "unknown-kid": lambda k: k.unknown_kid.token(),
    "wrong-aud": lambda k: k.trusted.token(aud="other-api"),
    "unknown-iss": lambda k: k.trusted.token(iss="https://evil.test"),
    "hs256": lambda k: jwt.encode(
        _claims(),
        "a-shared-secret-that-anyone-with-the-jwks-could-use",
        "HS256",
        headers={"kid": KID},
    ),
    "alg-none": lambda k: jwt.encode(_claims(), "", "none"),
    "malformed": lambda k: "a.b.c",
}


def _ago(seconds: int) -> datetime:
    return NOW - timedelta(seconds=seconds)


def _claims() -> dict[str, Any]:
    now = int(NOW.timestamp())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300}


@dataclass(frozen=True)
class Case:
    """A request (``check_request`` arguments), a token by name, the expected decision."""

    request: dict[str, Any]
    reason: Reason
    rule: str | None = None
    tenant: str = ""
    token: str | None = None
    would_match: tuple[str, ...] = ()
    audit: tuple[str, ...] = ()
    cel_errors: tuple[str, ...] = ()


def get(path: str, **fields: Any) -> dict[str, Any]:
    return {"method": "GET", "path": path, **fields}


def req(method: str, path: str, **fields: Any) -> dict[str, Any]:
    return {"method": method, "path": path, **fields}


def tcp(principal: str, **fields: Any) -> dict[str, Any]:
    return {"tcp": True, "principal": principal, **fields}


A, D = Reason.ALLOWED, Reason.DENIED
CASES = {
    # --- 1. no request.http: only `from` parts can match ------------------------------
    "tcp-from-only-rule-matches": Case(
        tcp("spiffe://cluster.local/ns/db-clients/sa/app"), A, "mesh/db-clients"
    ),
    "tcp-rule-with-to-does-not-match": Case(
        tcp("spiffe://cluster.local/ns/cache/sa/redis"), Reason.NO_MATCH
    ),
    "tcp-when-reading-request-does-not-match": Case(
        tcp("spiffe://cluster.local/ns/queue/sa/worker"), Reason.NO_MATCH
    ),
    "tcp-when-reading-destination-matches": Case(
        tcp("spiffe://cluster.local/ns/metrics/sa/scraper", destination=("10.0.0.9", 9090)),
        A,
        "mesh/metrics-port-when",
    ),
    "tcp-when-false": Case(
        tcp("spiffe://cluster.local/ns/metrics/sa/scraper", destination=("10.0.0.9", 80)),
        Reason.NO_MATCH,
    ),
    "tcp-unknown-peer": Case(tcp("spiffe://cluster.local/ns/x/sa/y"), Reason.NO_MATCH),
    "http-rule-with-to-matches": Case(
        get("/x", principal="spiffe://cluster.local/ns/cache/sa/redis"), A, "mesh/cache-http-only"
    ),
    "http-when-reading-request-matches": Case(
        get("/x", principal="spiffe://cluster.local/ns/queue/sa/worker"),
        A,
        "mesh/queue-request-when",
    ),
    # --- 2. bad path beats everything ---------------------------------------------------
    "bad-path": Case(get("/catalog/a%2Fb"), Reason.BAD_PATH),
    "bad-path-beats-allow": Case(get("/healthz\\"), Reason.BAD_PATH),
    "bad-path-beats-invalid-token": Case(
        get("/catalog/../../etc"), Reason.BAD_PATH, token="bad-signature"
    ),
    "bad-path-beats-cross-tenant": Case(
        get("/api/v1/vendors/globex/items/%00"), Reason.BAD_PATH, token="acme-staff"
    ),
    "bad-path-beats-deny": Case(
        req("DELETE", "/api/v1/payments/p1%5c", host=PAY), Reason.BAD_PATH, token="platform-admin"
    ),
    "bad-path-on-tcp-peer-that-would-match": Case(
        get("/%zz", principal="spiffe://cluster.local/ns/db-clients/sa/app"), Reason.BAD_PATH
    ),
    # --- 4. a present, invalid token ----------------------------------------------------
    **{
        f"invalid-token-{name}": Case(get("/catalog/shoes"), Reason.INVALID_TOKEN, token=name)
        for name in (
            "expired",
            "not-yet-valid",
            "bad-signature",
            "unknown-kid",
            "wrong-aud",
            "unknown-iss",
            "hs256",
            "alg-none",
            "malformed",
        )
    },
    "expired-within-leeway-is-valid": Case(
        get("/catalog/shoes"), A, "public/catalog", token="expired-within-leeway"
    ),
    **{
        f"invalid-token-beats-cross-tenant-{name}": Case(
            get("/api/v1/vendors/globex/items/1"), Reason.INVALID_TOKEN, token=name
        )
        for name in ("expired", "bad-signature-acme", "wrong-aud-acme", "unknown-iss-acme")
    },
    "invalid-token-beats-deny": Case(
        req("DELETE", "/api/v1/payments/p1", host=PAY), Reason.INVALID_TOKEN, token="bad-signature"
    ),
    "non-bearer-authorization-is-no-token": Case(
        get("/catalog/shoes", headers={"authorization": "Basic dTpw"}), A, "public/catalog"
    ),
    # --- 5. tenant isolation -----------------------------------------------------------------
    "own-tenant-by-path": Case(
        get("/api/v1/vendors/acme/items/1"), A, "acme/staff-items", "acme", "acme-staff"
    ),
    "cross-tenant-by-path": Case(
        get("/api/v1/vendors/globex/items/1"), Reason.CROSS_TENANT, None, "globex", "acme-staff"
    ),
    "cross-tenant-by-normalised-path": Case(
        get("/api/v1/vendors/acme/../globex/items/1"),
        Reason.CROSS_TENANT,
        None,
        "globex",
        "acme-staff",
    ),
    "cross-tenant-by-host": Case(
        get("/portal/home", host="globex.vendors.shop.test"),
        Reason.CROSS_TENANT,
        None,
        "globex",
        "acme-staff",
    ),
    "cross-tenant-by-host-with-port-and-case": Case(
        get("/portal/home", host="GLOBEX.Vendors.Shop.Test:8443"),
        Reason.CROSS_TENANT,
        None,
        "globex",
        "acme-staff",
    ),
    "own-tenant-by-host": Case(
        get("/portal/home", host="acme.vendors.shop.test"), A, "acme/portal", "acme", "acme-staff"
    ),
    "cross-tenant-by-header": Case(
        get("/reports", headers={"x-tenant-id": "globex"}),
        Reason.CROSS_TENANT,
        None,
        "globex",
        "acme-staff",
    ),
    "cross-tenant-by-header-any-case": Case(
        get("/reports", headers={"X-Tenant-Id": "globex"}),
        Reason.CROSS_TENANT,
        None,
        "globex",
        "acme-staff",
    ),
    "own-tenant-by-header": Case(
        get("/reports", headers={"x-tenant-id": "acme"}), A, "acme/reports", "acme", "acme-staff"
    ),
    "header-alone-authenticates-nobody": Case(
        get("/reports", headers={"x-tenant-id": "acme"}), Reason.MISSING_TOKEN, None, "acme"
    ),
    "first-target-wins-path-over-header": Case(
        get("/api/v1/vendors/acme/items/1", headers={"x-tenant-id": "globex"}),
        A,
        "acme/staff-items",
        "acme",
        "acme-staff",
    ),
    "no-target-tenant-uses-subject-tenant": Case(
        get("/reports"), A, "acme/reports", "acme", "acme-staff"
    ),
    "cross-tenant-beats-deny": Case(
        get("/api/v1/vendors/globex/items/export"),
        Reason.CROSS_TENANT,
        None,
        "globex",
        "acme-staff",
    ),
    # platform roles cross tenants, but then only platform policies apply
    "platform-role-crosses-tenants": Case(
        get("/api/v1/vendors/globex/items/1"), A, "admin/vendors-read", "globex", "acme-staff-admin"
    ),
    "platform-role-only-platform-policies": Case(
        req("DELETE", "/api/v1/vendors/acme/items/1"),
        Reason.NO_MATCH,
        None,
        "acme",
        "globex-admin",
    ),
    "platform-role-target-tenant-policy-never-grants": Case(
        get("/portal/home", host="acme.vendors.shop.test"),
        Reason.NO_MATCH,
        None,
        "acme",
        "globex-admin",
    ),
    "platform-role-in-own-tenant-uses-tenant-policies": Case(
        req("DELETE", "/api/v1/vendors/acme/items/1"),
        A,
        "acme/admins-delete",
        "acme",
        "acme-staff-admin",
    ),
    # a tenant policy never grants another tenant's request
    "other-tenant-policy-never-grants-anonymous": Case(
        get("/api/v1/vendors/acme/items/1"), Reason.MISSING_TOKEN, None, "acme"
    ),
    "other-tenant-policy-never-grants-by-host": Case(
        get("/portal/home", host="acme.vendors.shop.test"), Reason.MISSING_TOKEN, None, "acme"
    ),
    "tenant-policy-grants-own-tenant": Case(
        get("/api/v1/vendors/globex/anything"), A, "globex/greedy", "globex"
    ),
    "tenant-policy-not-for-untenanted-request": Case(get("/portal/home"), Reason.NO_MATCH),
    # --- 6. DENY overrides ALLOW -----------------------------------------------------------
    "deny-overrides-allow": Case(
        req("DELETE", "/api/v1/payments/p1", host=PAY),
        D,
        "guardrails/never-delete-payments",
        token="platform-admin",
    ),
    "deny-listed-after-allow-still-wins": Case(
        get("/api/v1/vendors/acme/items/export"), D, "acme/no-export", "acme", "acme-staff"
    ),
    "admin-allowed-where-not-denied": Case(
        req("PUT", "/api/v1/payments/p1", host=PAY), A, "payments/admin-all", token="platform-admin"
    ),
    # --- 7. AUDIT: recorded, never changes the outcome --------------------------------------
    "audit-recorded-with-allow": Case(
        get("/admin/reports"),
        A,
        "public/admin-reports",
        token="auditor",
        would_match=("guardrails/audit-dry",),
        audit=("guardrails/audit-admin", "guardrails/audit-reports"),
    ),
    "audit-recorded-with-no-match": Case(
        get("/admin/users"), Reason.NO_MATCH, audit=("guardrails/audit-admin",)
    ),
    # --- dry runs: recorded, never enforced -----------------------------------------------------
    "dry-run-deny-not-enforced": Case(
        get("/beta/x"), A, "public/beta", would_match=("guardrails/block-beta",)
    ),
    "dry-run-allow-not-enforced": Case(
        get("/preview"), Reason.NO_MATCH, token="tester", would_match=("account/preview",)
    ),
    "dry-run-allow-never-asks-for-a-token": Case(get("/preview"), Reason.NO_MATCH),
    # --- 8. ALLOW ----------------------------------------------------------------------------
    "allow-public": Case(get("/healthz"), A, "public/health"),
    "allow-workload-principal": Case(
        req("POST", "/api/v1/payments", host=PAY, principal=ORDER_SERVICE), A, "payments/charge"
    ),
    "allow-workload-namespace": Case(
        get(
            "/api/v1/payments/p1",
            host="pay.payments.svc.cluster.local:8080",
            principal="spiffe://cluster.local/ns/shipping/sa/labels",
        ),
        A,
        "payments/read",
    ),
    "policy-hosts-narrow": Case(
        req("POST", "/api/v1/payments", host="api.shop.test", principal=ORDER_SERVICE),
        Reason.NO_MATCH,
    ),
    "allow-request-principal": Case(get("/me"), A, "account/me", token="no-roles"),
    "allow-role": Case(req("PUT", "/settings"), A, "account/settings", token="user"),
    "allow-authenticated": Case(get("/orders"), A, "account/orders", token="no-roles"),
    "allow-when-on-claims": Case(get("/profile"), A, "account/profile", token="verified"),
    "allow-unauthenticated-only": Case(req("POST", "/signup"), A, "account/signup"),
    # --- 9. missing_token (401) vs no_match (403) -----------------------------------------------
    "missing-token-requestPrincipals": Case(get("/me"), Reason.MISSING_TOKEN),
    "missing-token-roles": Case(get("/settings"), Reason.MISSING_TOKEN),
    "missing-token-authenticated": Case(get("/orders"), Reason.MISSING_TOKEN),
    "missing-token-when-on-request-auth": Case(
        get("/profile"), Reason.MISSING_TOKEN, cel_errors=("account/profile",)
    ),
    "no-match-other-path": Case(get("/nothing"), Reason.NO_MATCH),
    "no-match-other-method": Case(req("POST", "/me"), Reason.NO_MATCH),
    "no-match-other-host": Case(get("/me", host="www.shop.test"), Reason.NO_MATCH),
    "no-match-with-token-lacking-role": Case(get("/settings"), Reason.NO_MATCH, token="no-roles"),
    "no-match-when-false": Case(get("/profile"), Reason.NO_MATCH, token="unverified"),
    "no-match-unauthenticated-only-with-token": Case(
        req("POST", "/signup"), Reason.NO_MATCH, token="no-roles"
    ),
}


def _decide(shop: Snapshot, keys: Keys, case: Case) -> Decision:
    request = dict(case.request)
    if case.token is not None:
        request["token"] = TOKENS[case.token](keys)
    return decide(shop, attributes(**request), NOW)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decision(shop: Snapshot, keys: Keys, case: Case) -> None:
    decision = _decide(shop, keys, case)
    assert (decision.reason, decision.rule, decision.tenant) == (
        case.reason,
        case.rule,
        case.tenant,
    ), decision.detail
    assert decision.would_match == case.would_match
    assert decision.audit == case.audit
    assert decision.cel_errors == case.cel_errors
    assert decision.allowed is (case.reason is Reason.ALLOWED)


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (Reason.ALLOWED, 200),
        (Reason.BAD_PATH, 400),
        (Reason.INVALID_TOKEN, 401),
        (Reason.MISSING_TOKEN, 401),
        (Reason.CROSS_TENANT, 403),
        (Reason.DENIED, 403),
        (Reason.NO_MATCH, 403),
        (Reason.INTERNAL_ERROR, 403),
    ],
    ids=lambda value: value.value if isinstance(value, Reason) else str(value),
)
def test_status_of_each_reason(reason: Reason, status: int) -> None:
    assert Decision(reason).status == status


def test_subject_is_the_token_sub(shop: Snapshot, keys: Keys) -> None:
    case = CASES["own-tenant-by-path"]
    assert _decide(shop, keys, case).subject == "alice"
    assert _decide(shop, keys, CASES["allow-public"]).subject == ""


def test_decision_as_json_keys(shop: Snapshot, keys: Keys) -> None:
    decision = _decide(shop, keys, CASES["audit-recorded-with-allow"])
    assert decision.as_json("01J", "sha256:x") == {
        "allowed": True,
        "status": 200,
        "reason": "allowed",
        "rule": "public/admin-reports",
        "tenant": "",
        "policy_version": "sha256:x",
        "decision_id": "01J",
        "would_match": ["guardrails/audit-dry"],
        "audit": ["guardrails/audit-admin", "guardrails/audit-reports"],
    }


LOCKDOWN = """\
apiVersion: authz/v1
kind: Lockdown
metadata: {name: incident}
spec:
  reason: "credential leak"
  exemptPaths: [/healthz]
"""
REVOCATIONS = """\
apiVersion: authz/v1
kind: Revocations
metadata: {name: incident}
spec:
  tokenIds: [revoked-jti]
  principals: [cluster.local/ns/legacy/sa/batch]
"""
OPEN = "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: open}\nspec:\n  rules: [{name: all}]\n"


def test_lockdown(tmp_path: Path, key: SigningKey) -> None:
    snapshot = compile_bundle(tmp_path, {"open.yaml": OPEN, "lockdown.yaml": LOCKDOWN}, key)
    assert decide(snapshot, attributes(path="/x"), NOW).reason is Reason.LOCKDOWN
    assert decide(snapshot, attributes(path="/healthz"), NOW).reason is Reason.ALLOWED


def test_revocations(tmp_path: Path, key: SigningKey) -> None:
    files = {"i.yaml": ISSUER_YAML, "open.yaml": OPEN, "revoked.yaml": REVOCATIONS}
    snapshot = compile_bundle(tmp_path, files, key)
    token = key.token(jti="revoked-jti")
    revoked_token = decide(snapshot, attributes(path="/x", token=token), NOW)
    assert (revoked_token.reason, revoked_token.status) == (Reason.REVOKED, 401)
    peer = attributes(path="/x", principal="spiffe://cluster.local/ns/legacy/sa/batch")
    revoked_peer = decide(snapshot, peer, NOW)
    assert (revoked_peer.reason, revoked_peer.status) == (Reason.REVOKED, 403)
