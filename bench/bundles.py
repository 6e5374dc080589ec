"""The decision benchmark's bundles, and the requests aimed at them with their intended outcome.

Two bundles, each written to a scratch directory that trusts a freshly generated key:

- a copy of the example bundle ``policies/`` (tenants ``acme`` and ``globex``);
- a generated bundle of N tenants x 10 rules: one Tenancy, an Issuer with a
  ``jwksFile``, the example's platform policies, and per tenant one Policy with
  ``metadata.tenant`` whose rules mix roles, path templates, methods and CEL ``when``.

Both get the same request shapes (:data:`KINDS`), aimed at a list of tenants; each
request carries the decision it must get, so the benchmark can refuse to time a
request that decides wrongly.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authz._proto.envoy.config.core.v3 import address_pb2
from authz._proto.envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from authz.decision import Reason
from authz.identity.minting import mint, write_key_pair
from authz.request import RequestAttributes, from_check_request

__all__ = [
    "KINDS",
    "RULES_PER_TENANT",
    "Expect",
    "Minter",
    "Probe",
    "Workload",
    "build_workload",
    "check_request",
    "copy_example",
    "spread",
    "tenant_names",
    "vendor_staff",
    "write_tenant_bundle",
]

ISSUER = "https://idp.shop.example.com"
AUDIENCE = "shop-api"
KID, ALG = "demo", "ES256"
API_HOST = "api.shop.example.com"
PAYMENT_HOST = "payment.payment.svc.cluster.local:8080"
ORDER_SERVICE = "spiffe://cluster.local/ns/order/sa/order-service"
TOKEN_TTL_S = 24 * 3600
RULES_PER_TENANT = 10

#: Request kinds and their weight (percent) in the realistic mix.
KINDS: dict[str, int] = {
    "vendor_staff_allowed": 30,
    "public_catalog": 25,
    "customer_own_orders": 15,
    "order_to_payment_mtls": 10,
    "missing_token": 8,
    "cross_tenant": 7,
    "manager_refund": 5,
}


@dataclass(frozen=True, slots=True)
class Expect:
    """The decision a request must get: its reason code and, when allowed, the rule."""

    reason: Reason
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """One benchmark request: the CheckRequest, its attributes and its intended decision."""

    kind: str
    message: Any  # external_auth_pb2.CheckRequest
    attributes: RequestAttributes
    expect: Expect


@dataclass(frozen=True, slots=True)
class Workload:
    """A bundle directory and, per kind, the request variants aimed at it."""

    name: str
    label: str
    root: Path
    tenants: int  # in the bundle
    targets: tuple[str, ...]  # the tenants the requests are aimed at
    probes: dict[str, tuple[Probe, ...]]

    def mix(self, seed: int, length: int = 10_000) -> tuple[RequestAttributes, ...]:
        """A weighted, shuffled sequence of every kind; each kind cycles through its variants."""
        kinds = random.Random(seed).choices(list(KINDS), list(KINDS.values()), k=length)
        turns = dict.fromkeys(KINDS, 0)
        sequence = []
        for kind in kinds:
            variants = self.probes[kind]
            sequence.append(variants[turns[kind] % len(variants)].attributes)
            turns[kind] += 1
        return tuple(sequence)


@dataclass(frozen=True, slots=True)
class Minter:
    """Signs tokens that a scratch bundle's Issuer accepts."""

    key: Path
    now: float

    def token(self, subject: str, roles: Sequence[str], tenant: str | None = None) -> str:
        """A token for ``subject``; every call yields a new ``jti``, so a new cache key."""
        claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject}
        claims["roles"] = list(roles)
        if tenant is not None:
            claims["tenant"] = tenant
        return mint(self.key, KID, ALG, claims, TOKEN_TTL_S, now=self.now)


def copy_example(source: Path, dest: Path, key: Path) -> None:
    """Copy the example bundle to ``dest`` and make its Issuer trust a new key at ``key``."""
    shutil.copytree(source, dest, symlinks=True)
    write_key_pair(key, dest / "keys" / "demo-jwks.json", KID, ALG)


def tenant_names(count: int) -> list[str]:
    """``count`` tenant ids, zero-padded so they sort in order: v0000, v0001, ..."""
    width = max(4, len(str(count - 1)))
    return [f"v{index:0{width}d}" for index in range(count)]


def spread(tenants: Sequence[str], count: int) -> list[str]:
    """``count`` tenants evenly spaced across ``tenants`` (all of them when count >= len)."""
    if count >= len(tenants):
        return list(tenants)
    if count < 2:
        raise ValueError("spread needs at least two tenants (cross-tenant requests)")
    last = len(tenants) - 1
    return [tenants[round(i * last / (count - 1))] for i in range(count)]


def write_tenant_bundle(root: Path, key: Path, tenants: Sequence[str]) -> int:
    """Write the generated bundle to ``root``; returns the number of files written."""
    (root / "tenants").mkdir(parents=True)
    write_key_pair(key, root / "keys" / "jwks.json", KID, ALG)
    (root / "issuer.yaml").write_text(_ISSUER_YAML)
    (root / "tenancy.yaml").write_text(_TENANCY_YAML)
    (root / "platform.yaml").write_text(_PLATFORM_YAML)
    for tenant in tenants:
        (root / "tenants" / f"{tenant}.yaml").write_text(_TENANT_YAML.replace("@T@", tenant))
    return 3 + len(tenants)


def build_workload(
    name: str, label: str, root: Path, minter: Minter, tenants: Sequence[str], total: int
) -> Workload:
    """The request variants of every kind, aimed at ``tenants`` (at least two)."""
    if len(tenants) < 2:
        raise ValueError("a workload needs at least two tenants")
    probes = {
        "vendor_staff_allowed": tuple(vendor_staff(minter, t) for t in tenants),
        "public_catalog": tuple(_catalog(query) for query in _QUERIES),
        "customer_own_orders": tuple(_customer(minter, f"c-{1001 + i}") for i in range(4)),
        "order_to_payment_mtls": tuple(_payment(amount) for amount in (120, 4999)),
        "missing_token": tuple(_missing_token(t) for t in tenants),
        "cross_tenant": tuple(
            _cross_tenant(minter, own, tenants[(i + len(tenants) // 2) % len(tenants)])
            for i, own in enumerate(tenants)
        ),
        "manager_refund": tuple(_refund(minter, t) for t in tenants),
    }
    return Workload(name, label, root, total, tuple(tenants), probes)


_QUERIES = ("", "?q=running+shoes", "?q=tent&page=2")


def vendor_staff(minter: Minter, tenant: str) -> Probe:
    """Vendor staff reading their own tenant's orders: allowed by a rule with a CEL ``when``."""
    token = minter.token(f"staff-{tenant}", ["vendor:staff"], tenant)
    message = check_request("GET", API_HOST, f"/api/v1/vendors/{tenant}/orders", token=token)
    return _probe(
        "vendor_staff_allowed", message, Reason.ALLOWED, f"{tenant}-vendor/staff-read-orders"
    )


def _catalog(query: str) -> Probe:
    message = check_request("GET", API_HOST, f"/api/v1/catalog/items/sku-42{query}")
    return _probe("public_catalog", message, Reason.ALLOWED, "storefront/browse-catalog")


def _customer(minter: Minter, customer: str) -> Probe:
    token = minter.token(customer, ["customer"])
    path = f"/api/v1/customers/{customer}/orders"
    message = check_request("GET", API_HOST, path, token=token)
    return _probe("customer_own_orders", message, Reason.ALLOWED, "customers/read-own-orders")


def _payment(amount: int) -> Probe:
    headers = {"x-idempotency-key": str(uuid.uuid4()), "x-amount": str(amount)}
    message = check_request(
        "POST", PAYMENT_HOST, "/api/v1/payments", headers=headers, principal=ORDER_SERVICE
    )
    return _probe(
        "order_to_payment_mtls", message, Reason.ALLOWED, "payments/order-service-charges"
    )


def _missing_token(tenant: str) -> Probe:
    message = check_request("GET", API_HOST, f"/api/v1/vendors/{tenant}/orders")
    return _probe("missing_token", message, Reason.MISSING_TOKEN)


def _cross_tenant(minter: Minter, own: str, target: str) -> Probe:
    token = minter.token(f"staff-{own}", ["vendor:staff"], own)
    message = check_request("GET", API_HOST, f"/api/v1/vendors/{target}/items", token=token)
    return _probe("cross_tenant", message, Reason.CROSS_TENANT)


def _refund(minter: Minter, tenant: str) -> Probe:
    token = minter.token(f"manager-{tenant}", ["vendor:manager"], tenant)
    path = f"/api/v1/vendors/{tenant}/orders/o-7731/refund"
    headers = {"x-refund-amount": "120", "content-type": "application/json"}
    message = check_request("POST", API_HOST, path, token=token, headers=headers)
    return _probe("manager_refund", message, Reason.ALLOWED, f"{tenant}-vendor/manager-refunds")


def _probe(kind: str, message: Any, reason: Reason, rule: str | None = None) -> Probe:
    return Probe(kind, message, from_check_request(message), Expect(reason, rule))


def check_request(
    method: str,
    host: str,
    path: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    principal: str = "",
) -> Any:
    """A CheckRequest shaped like the one Envoy's ext_authz filter sends."""
    request_id = str(uuid.uuid4())
    all_headers = {
        ":authority": host,
        ":method": method,
        ":path": path,
        ":scheme": "https",
        "accept": "application/json",
        "user-agent": "Mozilla/5.0 (bench)",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-request-id": request_id,
        **(headers or {}),
    }
    if token is not None:
        all_headers["authorization"] = f"Bearer {token}"
    context = attribute_context_pb2.AttributeContext
    http = context.HttpRequest(
        id=request_id,
        method=method,
        headers=all_headers,
        path=path,
        host=host,
        scheme="https",
        protocol="HTTP/2",
    )
    request = context.Request(http=http)
    request.time.FromNanoseconds(1_780_000_000_000_000_000)
    source = _peer("10.0.3.17", 43512)
    source.principal = principal
    destination = _peer("10.0.0.2", 8080)
    attributes = context(source=source, destination=destination, request=request)
    return external_auth_pb2.CheckRequest(attributes=attributes)


def _peer(address: str, port: int) -> Any:
    socket = address_pb2.SocketAddress(address=address, port_value=port)
    peer = attribute_context_pb2.AttributeContext.Peer
    return peer(address=address_pb2.Address(socket_address=socket))


_ISSUER_YAML = f"""\
apiVersion: authz/v1
kind: Issuer
metadata: {{name: shop-idp}}
spec:
  issuer: {ISSUER}
  audiences: [{AUDIENCE}]
  jwksFile: keys/jwks.json
  algorithms: [ES256, RS256]
  rolesClaim: roles
  tenantClaim: tenant
"""

_TENANCY_YAML = """\
apiVersion: authz/v1
kind: Tenancy
metadata: {name: vendors}
spec:
  target:
    - pathTemplate: "/api/v1/vendors/{tenant}/{**}"
    - host: "{tenant}.vendors.shop.example.com"
    - header: x-tenant-id
  platformRoles: [platform:admin]
"""

# The example bundle's platform policies, condensed: the same rules, so the two bundles
# differ only in their tenants.
_PLATFORM_YAML = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: health}
spec:
  rules:
    - name: probes
      to: [{methods: [GET, HEAD], paths: ["/healthz", "/readyz"]}]
---
apiVersion: authz/v1
kind: Policy
metadata: {name: mesh-guardrails}
spec:
  rules:
    - name: deny-legacy-namespace
      action: DENY
      from: [{namespaces: [legacy]}]
      to: [{notPaths: ["/healthz", "/readyz"]}]
---
apiVersion: authz/v1
kind: Policy
metadata: {name: storefront}
spec:
  hosts: ["api.shop.example.com"]
  rules:
    - name: browse-catalog
      to: [{methods: [GET, HEAD], paths: ["/api/v1/catalog", "/api/v1/catalog/*"]}]
      when: '!("q" in request.query) || size(request.query["q"]) <= 200'
---
apiVersion: authz/v1
kind: Policy
metadata: {name: media}
spec:
  hosts: ["media.shop.example.com"]
  rules:
    - name: product-images
      to: [{methods: [GET, HEAD], paths: ["*.jpg", "*.png", "*.webp"]}]
---
apiVersion: authz/v1
kind: Policy
metadata: {name: customers}
spec:
  hosts: ["api.shop.example.com"]
  rules:
    - name: place-order
      from: [{requestPrincipals: ["https://idp.shop.example.com/*"], roles: [customer]}]
      to: [{methods: [POST], paths: ["/api/v1/orders"]}]
    - name: read-own-orders
      from: [{roles: [customer]}]
      to:
        - methods: [GET]
          paths: ["/api/v1/customers/{*}/orders", "/api/v1/customers/{*}/orders/{*}"]
      when: >-
        request.path.startsWith("/api/v1/customers/" + string(request.auth.claims.sub) + "/orders")
---
apiVersion: authz/v1
kind: Policy
metadata: {name: payments}
spec:
  hosts: ["*.payment.svc.cluster.local"]
  rules:
    - name: never-delete-payments
      action: DENY
      to: [{methods: [DELETE], paths: ["/api/v1/payments", "/api/v1/payments/*"]}]
    - name: order-service-charges
      from: [{principals: ["cluster.local/ns/order/sa/order-service"]}]
      to: [{methods: [POST], paths: ["/api/v1/payments"]}]
      when: >-
        "x-idempotency-key" in request.headers
        && request.headers["x-idempotency-key"] != ""
        && int(request.headers["x-amount"]) <= 5000
    - name: services-read-payments
      from: [{namespaces: [order, shipping]}]
      to: [{methods: [GET], paths: ["/api/v1/payments/{*}"]}]
---
apiVersion: authz/v1
kind: Policy
metadata: {name: platform-admin}
spec:
  rules:
    - name: operate-vendors
      from: [{roles: ["platform:admin"]}]
      to: [{paths: ["/api/v1/vendors/{*}/{**}"]}]
    - name: admin-console
      from: [{roles: ["platform:admin"]}]
      to: [{hosts: [admin.shop.example.com], paths: ["/admin", "/admin/{**}"]}]
    - name: audit-admin-actions
      action: AUDIT
      from: [{roles: ["platform:admin"]}]
    - name: require-change-ticket
      action: DENY
      dryRun: true
      from: [{roles: ["platform:admin"]}]
      to: [{notMethods: [GET, HEAD, OPTIONS]}]
      when: '!("x-change-ticket" in request.headers)'
"""

# One tenant's policy: RULES_PER_TENANT rules; @T@ is the tenant id.
_TENANT_YAML = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: @T@-vendor, tenant: @T@}
spec:
  hosts: ["api.shop.example.com", "@T@.vendors.shop.example.com"]
  rules:
    - name: deny-contractor-exports
      action: DENY
      from: [{roles: ["vendor:contractor"]}]
      to: [{methods: [GET], paths: ["/api/v1/vendors/@T@/exports/{**}"]}]
    - name: staff-catalog
      from: [{roles: ["vendor:staff", "vendor:manager"]}]
      to:
        - methods: [GET, PUT]
          paths: ["/api/v1/vendors/@T@/items", "/api/v1/vendors/@T@/items/{*}"]
      when: request.auth.tenant == tenant
    - name: staff-read-orders
      from: [{roles: ["vendor:staff", "vendor:manager"]}]
      to:
        - methods: [GET]
          paths: ["/api/v1/vendors/@T@/orders", "/api/v1/vendors/@T@/orders/{*}"]
      when: request.auth.tenant == tenant
    - name: manager-refunds
      from: [{roles: ["vendor:manager"], notRoles: ["vendor:contractor"]}]
      to: [{methods: [POST], paths: ["/api/v1/vendors/@T@/orders/{*}/refund"]}]
      when: request.auth.tenant == tenant && int(request.headers["x-refund-amount"]) <= 500
    - name: manager-prices
      from: [{roles: ["vendor:manager"]}]
      to: [{methods: [PATCH], paths: ["/api/v1/vendors/@T@/items/{*}/price"]}]
      when: request.auth.tenant == tenant && int(request.headers["x-price-cents"]) > 0
    - name: staff-inventory
      from: [{roles: ["vendor:staff", "vendor:manager"]}]
      to: [{methods: [GET, PUT], paths: ["/api/v1/vendors/@T@/inventory/{**}"]}]
      when: request.auth.tenant == tenant
    - name: manager-reports
      from: [{roles: ["vendor:manager"]}]
      to: [{methods: [GET], paths: ["/api/v1/vendors/@T@/reports/{*}"]}]
      when: >-
        request.auth.tenant == tenant
        && (!("limit" in request.query) || int(request.query["limit"]) <= 1000)
    - name: catalog-sync
      from: [{principals: ["cluster.local/ns/catalog-sync/sa/sync"]}]
      to: [{methods: [POST, PUT], paths: ["/api/v1/vendors/@T@/items/{**}"]}]
    - name: audit-order-writes
      action: AUDIT
      to: [{methods: [POST, PUT, PATCH], paths: ["/api/v1/vendors/@T@/orders/{**}"]}]
    - name: portal
      from: [{roles: ["vendor:staff", "vendor:manager"]}]
      to:
        - hosts: ["@T@.vendors.shop.example.com"]
          methods: [GET]
          paths: ["/portal", "/portal/*"]
      when: request.auth.tenant == tenant
"""
