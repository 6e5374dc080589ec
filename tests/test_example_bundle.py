"""The example bundle in policies/, decided end to end through the `authz` command line.

Every story of the shop bundle is one row of CASES: a CheckRequest from
tests/examples/, an optional token minted by `authz token`, and the decision
that the policy-language specification requires. The bundle is copied once,
and `authz keygen` overlays a fresh demo key on the copy, so tokens can be
signed without a private key ever living in the repository.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
EXAMPLES = Path(__file__).resolve().parent / "examples"

ISSUER = "https://idp.shop.example.com"
AUDIENCE = "shop-api"


@dataclass(frozen=True, slots=True)
class Token:
    """What to put into a minted token, and which key signs it."""

    subject: str
    roles: tuple[str, ...] = ()
    tenant: str | None = None
    ttl: int = 600
    issuer: str = ISSUER
    audience: str = AUDIENCE
    foreign_key: bool = False


@dataclass(frozen=True, slots=True)
class Case:
    """One request and the decision the specification requires for it."""

    id: str
    request: str
    token: Token | None
    allowed: bool
    status: int
    reason: str
    rule: str | None = None
    tenant: str = ""
    audit: tuple[str, ...] = ()
    would_match: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bundle:
    """A copy of policies/ whose demo key we hold, plus an unrelated key."""

    path: Path
    key: Path
    foreign_key: Path


CUSTOMER = Token("c-1001", roles=("customer",))
ACME_STAFF = Token("s-11", roles=("vendor:staff",), tenant="acme")
ACME_MANAGER = Token("m-17", roles=("vendor:manager",), tenant="acme")
GLOBEX_STAFF = Token("s-21", roles=("vendor:staff",), tenant="globex")
GLOBEX_MANAGER = Token("m-27", roles=("vendor:manager",), tenant="globex")
GLOBEX_CONTRACTOR = Token("m-28", roles=("vendor:manager", "vendor:contractor"), tenant="globex")
STAFF_WITHOUT_TENANT = Token("s-99", roles=("vendor:staff",))
ADMIN = Token("ops-1", roles=("platform:admin",), tenant="platform")
OTHER_CUSTOMER = replace(CUSTOMER, subject="c-2002")
PREFIX_CUSTOMER = replace(CUSTOMER, subject="c-100")  # "c-100" is a prefix of "c-1001"
EXPIRED = replace(CUSTOMER, ttl=-600)  # beyond the issuer's 30 s leeway
FOREIGN_KEY = replace(CUSTOMER, foreign_key=True)
OTHER_AUDIENCE = replace(CUSTOMER, audience="other-api")
UNKNOWN_ISSUER = replace(CUSTOMER, issuer="https://idp.evil.example.com")

ADMIN_AUDIT = ("platform-admin/audit-admin-actions",)
CHANGE_TICKET = ("platform-admin/require-change-ticket",)


def allow(
    id_: str,
    request: str,
    token: Token | None,
    rule: str,
    *,
    tenant: str = "",
    audit: tuple[str, ...] = (),
    would_match: tuple[str, ...] = (),
) -> Case:
    """A case the bundle must allow, by `rule`."""
    return Case(id_, request, token, True, 200, "allowed", rule, tenant, audit, would_match)


def deny(
    id_: str,
    request: str,
    token: Token | None,
    status: int,
    reason: str,
    *,
    rule: str | None = None,
    tenant: str = "",
) -> Case:
    """A case the bundle must refuse with `status` and `reason`."""
    return Case(id_, request, token, False, status, reason, rule, tenant)


CASES = [
    # Health probes and the public storefront: no identity at all.
    allow("health-anonymous", "healthz", None, "health/probes"),
    allow("catalog-public", "catalog-item", None, "storefront/browse-catalog"),
    allow("catalog-search", "catalog-search", None, "storefront/browse-catalog"),
    deny("catalog-search-too-long", "catalog-search-huge", None, 403, "no_match"),
    allow("catalog-path-normalised", "catalog-unnormalised", None, "storefront/browse-catalog"),
    allow("media-image-by-suffix", "media-image", None, "media/product-images"),
    deny("media-not-an-image", "media-document", None, 403, "no_match"),
    # Customers: orders, and only their own.
    allow("customer-places-order", "order-create", CUSTOMER, "customers/place-order"),
    deny("order-without-token", "order-create", None, 401, "missing_token"),
    allow("customer-reads-own-orders", "customer-orders", CUSTOMER, "customers/read-own-orders"),
    deny("customer-reads-other-orders", "customer-orders", OTHER_CUSTOMER, 403, "no_match"),
    deny("customer-id-prefix-trick", "customer-orders", PREFIX_CUSTOMER, 403, "no_match"),
    # Vendors inside their own tenant.
    allow(
        "acme-staff-updates-item",
        "vendor-acme-item-put",
        ACME_STAFF,
        "acme-vendor/staff-catalog",
        tenant="acme",
    ),
    allow(
        "acme-staff-reads-orders",
        "vendor-acme-orders",
        ACME_STAFF,
        "acme-vendor/staff-read-orders",
        tenant="acme",
    ),
    allow("acme-portal-by-host", "portal-acme", ACME_STAFF, "acme-vendor/portal", tenant="acme"),
    deny(
        "vendor-orders-without-token",
        "vendor-acme-orders",
        None,
        401,
        "missing_token",
        tenant="acme",
    ),
    deny(
        "vendor-role-without-tenant-claim",
        "vendor-acme-orders",
        STAFF_WITHOUT_TENANT,
        403,
        "no_match",
        tenant="acme",
    ),
    # The isolation guard: path, header and host each name the target tenant.
    deny(
        "cross-tenant-by-path",
        "vendor-globex-orders",
        ACME_STAFF,
        403,
        "cross_tenant",
        tenant="globex",
    ),
    deny(
        "cross-tenant-by-header",
        "catalog-as-globex",
        ACME_STAFF,
        403,
        "cross_tenant",
        tenant="globex",
    ),
    deny("cross-tenant-by-host", "portal-acme", GLOBEX_STAFF, 403, "cross_tenant", tenant="acme"),
    deny(
        "cross-tenant-by-dot-dot",
        "vendor-acme-dotdot-globex",
        ACME_STAFF,
        403,
        "cross_tenant",
        tenant="globex",
    ),
    # Refunds: an ABAC limit per tenant.
    allow(
        "acme-refund-within-limit",
        "refund-acme-450",
        ACME_MANAGER,
        "acme-vendor/manager-refunds",
        tenant="acme",
    ),
    deny("acme-refund-over-limit", "refund-acme-900", ACME_MANAGER, 403, "no_match", tenant="acme"),
    deny(
        "acme-refund-amount-not-a-number",
        "refund-acme-not-a-number",
        ACME_MANAGER,
        403,
        "no_match",
        tenant="acme",
    ),
    deny("acme-staff-cannot-refund", "refund-acme-450", ACME_STAFF, 403, "no_match", tenant="acme"),
    allow(
        "globex-refund-within-limit",
        "refund-globex-150",
        GLOBEX_MANAGER,
        "globex-vendor/manager-refunds",
        tenant="globex",
    ),
    deny(
        "globex-refund-over-its-limit",
        "refund-globex-450",
        GLOBEX_MANAGER,
        403,
        "no_match",
        tenant="globex",
    ),
    deny(
        "globex-contractor-cannot-refund",
        "refund-globex-150",
        GLOBEX_CONTRACTOR,
        403,
        "no_match",
        tenant="globex",
    ),
    deny(
        "acme-manager-cannot-refund-globex",
        "refund-globex-150",
        ACME_MANAGER,
        403,
        "cross_tenant",
        tenant="globex",
    ),
    # Platform admins: across tenants, audited, with a rule on trial.
    allow(
        "admin-reads-acme",
        "vendor-acme-orders",
        ADMIN,
        "platform-admin/operate-vendors",
        tenant="acme",
        audit=ADMIN_AUDIT,
    ),
    allow(
        "admin-writes-globex-dry-run",
        "vendor-globex-item-put",
        ADMIN,
        "platform-admin/operate-vendors",
        tenant="globex",
        audit=ADMIN_AUDIT,
        would_match=CHANGE_TICKET,
    ),
    allow(
        "admin-writes-globex-with-ticket",
        "vendor-globex-item-put-ticket",
        ADMIN,
        "platform-admin/operate-vendors",
        tenant="globex",
        audit=ADMIN_AUDIT,
    ),
    allow(
        "admin-console",
        "admin-console",
        ADMIN,
        "platform-admin/admin-console",
        tenant="platform",
        audit=ADMIN_AUDIT,
    ),
    deny("admin-console-without-token", "admin-console", None, 401, "missing_token"),
    deny("admin-console-as-vendor", "admin-console", ACME_MANAGER, 403, "no_match", tenant="acme"),
    # Service to service over mTLS.
    allow("order-service-charges", "payment-charge", None, "payments/order-service-charges"),
    deny("wrong-workload-charges", "payment-charge-wrong-workload", None, 403, "no_match"),
    deny("charge-without-idempotency-key", "payment-charge-no-key", None, 403, "no_match"),
    deny("charge-over-limit", "payment-charge-7500", None, 403, "no_match"),
    allow(
        "shipping-reads-payment", "payment-read-shipping", None, "payments/services-read-payments"
    ),
    # DENY rules win over every ALLOW rule.
    deny(
        "payment-delete-denied",
        "payment-delete",
        None,
        403,
        "denied",
        rule="payments/never-delete-payments",
    ),
    deny(
        "legacy-namespace-denied",
        "legacy-catalog",
        None,
        403,
        "denied",
        rule="mesh-guardrails/deny-legacy-namespace",
    ),
    allow("legacy-namespace-probes", "legacy-healthz", None, "health/probes"),
    # Paths refused before any rule.
    deny("encoded-slash", "vendor-acme-encoded-slash", ACME_STAFF, 400, "bad_path"),
    deny("dot-dot-above-root", "escape-root", None, 400, "bad_path"),
    # Tokens that are present but invalid: 401, even where no token is needed.
    deny("expired-token", "order-create", EXPIRED, 401, "invalid_token"),
    deny("token-from-another-key", "order-create", FOREIGN_KEY, 401, "invalid_token"),
    deny("token-for-another-audience", "order-create", OTHER_AUDIENCE, 401, "invalid_token"),
    deny("token-from-unknown-issuer", "order-create", UNKNOWN_ISSUER, 401, "invalid_token"),
    deny("expired-token-on-public-catalog", "catalog-item", EXPIRED, 401, "invalid_token"),
]


def authz(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `authz` command line with this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "authz", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def keygen(key: Path, jwks: Path) -> None:
    """A new ES256 key pair with kid `demo`."""
    done = authz(
        "keygen", "--key", str(key), "--jwks", str(jwks), "--kid", "demo", "--alg", "ES256"
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A copy of the example bundle whose `keys/demo-jwks.json` holds a key we own."""
    root = tmp_path_factory.mktemp("example-bundle")
    copy = root / "policies"
    shutil.copytree(POLICIES, copy)
    keygen(root / "demo.pem", copy / "keys" / "demo-jwks.json")
    # Same kid, same algorithm, never published: its signatures must not verify.
    keygen(root / "foreign.pem", root / "foreign-jwks.json")
    return Bundle(path=copy, key=root / "demo.pem", foreign_key=root / "foreign.pem")


def mint(bundle: Bundle, token: Token) -> str:
    """A signed JWT from `authz token`."""
    key = bundle.foreign_key if token.foreign_key else bundle.key
    args = ["token", "--key", str(key), "--kid", "demo", "--alg", "ES256"]
    args += ["--issuer", token.issuer, "--audience", token.audience, "--subject", token.subject]
    args += ["--ttl", str(token.ttl)]
    if token.roles:
        args += ["--roles", ",".join(token.roles)]
    if token.tenant is not None:
        args += ["--tenant", token.tenant]
    done = authz(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def check_request(case: Case, bundle: Bundle, tmp_path: Path) -> Path:
    """The fixture's CheckRequest, with the case's token in `authorization`."""
    request: dict[str, Any] = json.loads((EXAMPLES / f"{case.request}.json").read_text())
    if case.token is not None:
        headers = request["attributes"]["request"]["http"].setdefault("headers", {})
        headers["authorization"] = f"Bearer {mint(bundle, case.token)}"
    path = tmp_path / f"{case.request}.json"
    path.write_text(json.dumps(request))
    return path


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_example_bundle_decides(case: Case, bundle: Bundle, tmp_path: Path) -> None:
    request = check_request(case, bundle, tmp_path)

    done = authz("check", "--policies", str(bundle.path), str(request))

    assert done.returncode == (0 if case.allowed else 1), done.stdout + done.stderr
    decision: dict[str, Any] = json.loads(done.stdout)
    got = {key: decision[key] for key in ("allowed", "status", "reason", "rule", "tenant")}
    got["audit"] = tuple(decision["audit"])
    got["would_match"] = tuple(decision["would_match"])
    assert got == {
        "allowed": case.allowed,
        "status": case.status,
        "reason": case.reason,
        "rule": case.rule,
        "tenant": case.tenant,
        "audit": case.audit,
        "would_match": case.would_match,
    }
    assert decision["policy_version"].startswith("sha256:")
    assert decision["decision_id"]


def test_example_bundle_is_valid() -> None:
    done = authz("validate", "policies")

    assert done.returncode == 0, done.stdout + done.stderr


def test_every_request_fixture_is_used() -> None:
    fixtures = {path.stem for path in EXAMPLES.glob("*.json")}

    assert fixtures == {case.request for case in CASES}


def test_demo_jwks_holds_one_public_key_only() -> None:
    jwks = json.loads((POLICIES / "keys" / "demo-jwks.json").read_text())

    [key] = jwks["keys"]
    assert (key["kty"], key["crv"], key["kid"], key["alg"]) == ("EC", "P-256", "demo", "ES256")
    assert "d" not in key  # the private scalar: never in the repository
