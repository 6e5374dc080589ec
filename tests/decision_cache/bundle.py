"""The bundle of the decision-cache tests: every part of a request matters to some rule.

One platform policy whose rules read, between them, each key part the cache must
take: method, host, path and query, the source principal, the token (roles and
tenant), the tenancy header, a header read by name in CEL, the network parts
(addresses, ports, destination principal, scheme, protocol, context extensions) and,
through a certificate serial revocation, the peer certificate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.engine.checks import check_request
from tests.pki import CertificateAuthority, Issued
from tests.policy.bundles import ISSUER, ISSUER_YAML, SigningKey, policy, write_bundle

SHOP = "api.shop.test"
REVOKED_PRINCIPAL = "cluster.local/ns/legacy/sa/batch"
REVOKED_SUBJECT = "mallory"

TENANCY = """\
apiVersion: authz/v1
kind: Tenancy
metadata: {name: vendors}
spec:
  target:
    - pathTemplate: "/vendors/{tenant}/{**}"
    - header: x-tenant-id
  platformRoles: [platform:admin]
"""

RULES = """\
- name: guardrail
  action: DENY
  to: [{paths: ["/admin/{**}"]}]
- name: vendor-items
  from: [{roles: [staff]}]
  to: [{methods: [GET], paths: ["/vendors/{*}/items/{*}"]}]
  when: request.auth.tenant == tenant
- name: refunds
  from: [{roles: [staff]}]
  to: [{methods: [POST], paths: ["/vendors/{*}/refunds"]}]
  when: >-
    request.auth.tenant == tenant && "x-refund-amount" in request.headers
    && int(request.headers["x-refund-amount"]) <= 500
- name: orders
  from: [{authenticated: true}]
  to: [{methods: [GET], paths: ["/orders"]}]
  when: tenant == "" || request.auth.tenant == tenant
- name: hosted
  to: [{hosts: ["a.shop.test"], paths: ["/hosted"]}]
- name: search
  to: [{paths: ["/search"]}]
  when: '"q" in request.query && request.query["q"] == "ok"'
- name: mesh
  from: [{principals: ["cluster.local/ns/order/sa/order"]}]
  to: [{paths: ["/mesh"]}]
- name: network
  to: [{paths: ["/network"]}]
  when: >-
    source.address == "10.0.0.7" && source.port == 41234
    && destination.address == "10.0.0.9" && destination.port == 8080
    && destination.principal == "cluster.local/ns/shop/sa/api"
    && request.scheme == "https" && request.protocol == "HTTP/2"
    && "zone" in context && context["zone"] == "eu"
- name: broken
  to: [{paths: ["/broken"]}]
  when: int(request.headers["x-count"]) > 0
"""


def revocations(serial: str) -> str:
    return f"""\
apiVersion: authz/v1
kind: Revocations
metadata: {{name: incident}}
spec:
  subjects: ["{ISSUER}/{REVOKED_SUBJECT}"]
  principals: ["{REVOKED_PRINCIPAL}"]
  certificateSerials: ["{serial}"]
"""


def install(root: Path, key: SigningKey, revoked: Issued, extra: str = "") -> Path:
    """The bundle at ``root``, trusting ``key``, revoking the certificate ``revoked``;
    ``extra`` rules are appended to the policy."""
    files = {
        "issuer.yaml": ISSUER_YAML,
        "tenancy.yaml": TENANCY,
        "revocations.yaml": revocations(format(revoked.serial, "x")),
        "policy.yaml": policy("shop", RULES + extra),
    }
    return write_bundle(root, files, key)


def request(*, certificate: Issued | None = None, **fields: Any) -> Any:
    """A CheckRequest to the shop host with the network parts the `network` rule wants."""
    fields.setdefault("host", SHOP)
    fields.setdefault("destination_principal", "spiffe://cluster.local/ns/shop/sa/api")
    fields.setdefault("scheme", "https")
    fields.setdefault("protocol", "HTTP/2")
    fields.setdefault("context", {"zone": "eu"})
    message = check_request(**fields)
    if certificate is not None:
        message.attributes.source.certificate = quote(certificate.cert_pem().decode())
    return message


def certificates() -> tuple[Issued, Issued]:
    """A revoked and a good workload certificate from one CA."""
    ca = CertificateAuthority()
    return ca.issue("revoked"), ca.issue("good")
