"""`explain`: the decision comes from `decide`, and the explanation names what failed."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.authoring_cli import explain_check
from authz.engine import decide
from authz.explain import Explanation, RuleTrace, explain
from authz.policy.bundle import Snapshot, load_bundle
from authz.policy.diff import bundle_documents
from authz.policytest import EphemeralKeys, case_request, compile_tests, ephemeral_keys
from authz.request import RequestAttributes, from_check_request
from tests.authoring.commands import POLICIES

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
API = "api.shop.example.com"
PAYMENTS = "payment.payment.svc.cluster.local:8080"
ORDER_SERVICE = "spiffe://cluster.local/ns/order/sa/order-service"
CUSTOMER = {"sub": "c-1001", "roles": ["customer"]}
ACME_MANAGER = {"sub": "m-17", "roles": ["vendor:manager"], "tenant": "acme"}
ADMIN = {"sub": "ops-1", "roles": ["platform:admin"], "tenant": "platform"}


@pytest.fixture(scope="module")
def keys() -> EphemeralKeys:
    return ephemeral_keys(load_bundle(POLICIES))


@dataclass(frozen=True, slots=True)
class Ask:
    """A request to the example bundle and what its explanation must say."""

    method: str
    path: str
    host: str = API
    headers: tuple[tuple[str, str], ...] = ()
    claims: dict[str, Any] | None = None
    principal: str | None = None
    reason: str = "no_match"
    rule: str | None = None  # the rule the explanation is about
    where: str | None = None  # ... and the part of it that failed
    effect: str | None = None
    step: tuple[str, str] | None = None  # (step, outcome) that decided


def attributes(keys: EphemeralKeys, ask: Ask) -> RequestAttributes:
    headers = dict(ask.headers)
    if ask.claims is not None:
        issuer = keys.snapshot.issuers[0]
        claims = {"iss": issuer.issuer, "aud": "shop-api", "exp": int(NOW.timestamp()) + 60}
        headers["authorization"] = "Bearer " + keys.sign(issuer, {**claims, **ask.claims})
    http = {"method": ask.method, "path": ask.path, "host": ask.host, "headers": headers}
    body: dict[str, Any] = {"attributes": {"request": {"http": http}}}
    if ask.principal is not None:
        body["attributes"]["source"] = {"principal": ask.principal}
    return from_check_request(json_format.ParseDict(body, external_auth_pb2.CheckRequest()))


def trace(explanation: Explanation, rule: str) -> RuleTrace:
    [found] = [t for t in explanation.rules if t.rule == rule]
    return found


ASKS = {
    "tenant-claim-missing": Ask(
        "GET",
        "/api/v1/vendors/acme/orders",
        claims={"sub": "s-99", "roles": ["vendor:staff"]},
        rule="acme-vendor/staff-read-orders",
        where="when",
    ),
    "other-customer": Ask(
        "GET",
        "/api/v1/customers/c-1001/orders",
        claims={**CUSTOMER, "sub": "c-2002"},
        rule="customers/read-own-orders",
        where="when",
    ),
    "wrong-workload": Ask(
        "POST",
        "/api/v1/payments",
        PAYMENTS,
        (("x-idempotency-key", "k"), ("x-amount", "1")),
        principal="spiffe://cluster.local/ns/catalog/sa/catalog-service",
        rule="payments/order-service-charges",
        where="from[0].principals",
    ),
    "staff-refund": Ask(
        "POST",
        "/api/v1/vendors/acme/orders/o-1/refund",
        headers=(("x-refund-amount", "10"),),
        claims={**ACME_MANAGER, "roles": ["vendor:staff"]},
        rule="acme-vendor/manager-refunds",
        where="from[0].roles",
    ),
    "not-an-image": Ask(
        "GET",
        "/products/1/manual.pdf",
        "media.shop.example.com",
        rule="media/product-images",
        where="to[0].paths",
    ),
    "legacy-probe": Ask(
        "GET",
        "/healthz",
        principal="spiffe://cluster.local/ns/legacy/sa/batch",
        reason="allowed",
        rule="mesh-guardrails/deny-legacy-namespace",
        where="to[0].notPaths",
    ),
    "refund-not-a-number": Ask(
        "POST",
        "/api/v1/vendors/acme/orders/o-1/refund",
        headers=(("x-refund-amount", "lots"),),
        claims=ACME_MANAGER,
        rule="acme-vendor/manager-refunds",
        where="when",
    ),
    "payment-delete": Ask(
        "DELETE",
        "/api/v1/payments/p-1",
        PAYMENTS,
        principal=ORDER_SERVICE,
        reason="denied",
        rule="payments/never-delete-payments",
        effect="decided",
    ),
    "admin-write-on-trial": Ask(
        "PUT",
        "/api/v1/vendors/globex/items/1",
        claims=ADMIN,
        reason="allowed",
        rule="platform-admin/require-change-ticket",
        effect="would_match",
    ),
    "order-without-token": Ask(
        "POST",
        "/api/v1/orders",
        reason="missing_token",
        rule="customers/place-order",
        where="from[0].requestPrincipals",
        effect="wants_token",
    ),
    "bad-path": Ask("GET", "/a/%2F/b", reason="bad_path", step=("path", "bad_path")),
    "expired-token": Ask(
        "GET",
        "/api/v1/catalog",
        claims={**CUSTOMER, "exp": int(NOW.timestamp()) - 600},
        reason="invalid_token",
        step=("token", "invalid"),
    ),
    "cross-tenant": Ask(
        "GET",
        "/api/v1/vendors/globex/orders",
        claims=ACME_MANAGER,
        reason="cross_tenant",
        step=("tenant", "cross_tenant"),
    ),
}


@pytest.mark.parametrize("ask", ASKS.values(), ids=ASKS.keys())
def test_explain_agrees_with_decide_and_names_the_failing_part(
    keys: EphemeralKeys, ask: Ask
) -> None:
    request = attributes(keys, ask)

    explanation = explain(keys.snapshot, request, NOW)

    assert explanation.decision == decide(keys.snapshot, request, NOW)
    assert explanation.decision.reason.value == ask.reason
    assert explanation.consistent
    if ask.step is not None:
        assert (explanation.steps[-1].name, explanation.steps[-1].outcome) == ask.step
        assert explanation.rules == ()
    if ask.rule is not None:
        found = trace(explanation, ask.rule)
        if ask.where is not None:
            assert ask.where in [failure.where for failure in found.failures]
            assert f"{ask.where}: " in explanation.as_text() or ask.where == "when"
        if ask.effect is not None:
            assert found.effect == ask.effect


def test_every_example_test_case_is_explained_consistently(keys: EphemeralKeys) -> None:
    documents, _ = bundle_documents(POLICIES, keys.snapshot)
    tests, errors = compile_tests(documents, keys.snapshot.issuers)
    assert not errors
    count = 0
    for test in tests:
        for case in test.cases:
            request = from_check_request(case_request(keys, case, test.now))
            explanation = explain(keys.snapshot, request, test.now)
            assert explanation.decision == decide(keys.snapshot, request, test.now), case.name
            assert explanation.consistent, case.name
            count += 1
    assert count > 40


def test_when_values_are_shown_and_tokens_redacted(keys: EphemeralKeys) -> None:
    ask = ASKS["tenant-claim-missing"]
    request = attributes(keys, ask)
    assert request.http is not None
    token = request.http.headers["authorization"]

    explanation = explain(keys.snapshot, request, NOW)
    text = explanation.as_text()
    data = json.dumps(explanation.as_json())

    found = trace(explanation, "acme-vendor/staff-read-orders")
    assert found.when == "false"
    assert dict(found.variables) == {"request.auth.tenant": "", "tenant": "acme"}
    assert token not in text and token.split(" ")[1] not in data
    assert '"<redacted>"' in data  # require-change-ticket reads request.headers


def test_rules_that_were_not_candidates_say_why(keys: EphemeralKeys) -> None:
    explanation = explain(keys.snapshot, attributes(keys, Ask("POST", "/api/v1/catalog")), NOW)

    why = dict(explanation.not_applicable)
    assert why["storefront/browse-catalog"] == "its methods ['GET', 'HEAD'] do not include 'POST'"
    assert why["acme-vendor/portal"].startswith("a policy of tenant acme")
    assert "do not include 'api.shop.example.com'" in why["media/product-images"]


def test_a_network_level_check(keys: EphemeralKeys) -> None:
    body = {"attributes": {"source": {"principal": "spiffe://cluster.local/ns/legacy/sa/batch"}}}
    request = from_check_request(json_format.ParseDict(body, external_auth_pb2.CheckRequest()))

    explanation = explain(keys.snapshot, request, NOW)

    assert explanation.decision == decide(keys.snapshot, request, NOW)
    assert explanation.consistent
    assert explanation.steps[0].name == "request"
    failures = trace(explanation, "mesh-guardrails/deny-legacy-namespace").failures
    assert [f.where for f in failures] == ["request"]


LOCKDOWN = """\
apiVersion: authz/v1
kind: Lockdown
metadata: {name: incident}
spec:
  tenant: acme
  reason: credential leak
  exemptPaths: ["/healthz"]
---
apiVersion: authz/v1
kind: Revocations
metadata: {name: revoked}
spec:
  principals: ["cluster.local/ns/order/sa/order-service"]
"""


@pytest.mark.parametrize(
    ("ask", "step"),
    [
        (Ask("GET", "/api/v1/vendors/acme/orders", reason="lockdown"), ("lockdown", "covered")),
        (Ask("GET", "/healthz", reason="allowed"), ("tenant", "none")),
        (
            Ask("GET", "/api/v1/payments/p-1", PAYMENTS, principal=ORDER_SERVICE, reason="revoked"),
            ("revocation", "revoked"),
        ),
    ],
    ids=["locked-down", "exempt-path", "revoked-workload"],
)
def test_lockdowns_and_revocations(tmp_path: Path, ask: Ask, step: tuple[str, str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(POLICIES, bundle)
    (bundle / "incident.yaml").write_text(LOCKDOWN)
    keys = ephemeral_keys(load_bundle(bundle))
    request = attributes(keys, ask)

    explanation = explain(keys.snapshot, request, NOW)

    assert explanation.decision == decide(keys.snapshot, request, NOW)
    assert explanation.decision.reason.value == ask.reason
    assert explanation.consistent
    assert step in [(s.name, s.outcome) for s in explanation.steps]


def test_explain_check_adds_json_or_prints_text(
    keys: EphemeralKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot: Snapshot = keys.snapshot
    request = attributes(keys, ASKS["not-an-image"])
    output = {"allowed": False, "reason": "no_match"}

    with_json = explain_check("json", snapshot, request, NOW, output)
    unchanged = explain_check("text", snapshot, request, NOW, output)

    assert with_json["explanation"]["decision"]["reason"] == "no_match"
    assert unchanged == output
    assert "to[0].paths: '/products/1/manual.pdf' does not match" in capsys.readouterr().err
