"""Every CEL variable of spec §4.3, read through ``decide`` with the value it must have.

One bundle holds one AUDIT rule per expression (AUDIT rules are all evaluated and
recorded), so a single decision shows which expressions held. Each expression is
also checked negated, so a rule that is trivially true cannot pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authz._proto.envoy.config.core.v3 import base_pb2
from authz.cel import VARIABLES as DECLARED
from authz.decision import Decision
from authz.engine import decide
from authz.policy.bundle import Snapshot
from authz.request import from_check_request
from tests.engine.checks import attributes, check_request
from tests.policy.bundles import ISSUER_YAML, NOW, SigningKey, compile_bundle

TENANCY = """\
apiVersion: authz/v1
kind: Tenancy
metadata: {name: t}
spec:
  target: [{header: x-tenant-id}]
"""

# id -> (expression that must be true, which request: "full" or "anonymous")
VARIABLES: dict[str, tuple[str, str]] = {
    "request.method-upper-case": ('request.method == "POST"', "full"),
    "request.path-normalised": ('request.path == "/Api/v1/items/Ab"', "full"),
    "request.raw_path-as-received": (
        'request.raw_path == "/Api//v1/./items/%41b?a=1&a=2&b=x%20y&flag"',
        "full",
    ),
    "request.query-first-value": ('request.query["a"] == "1"', "full"),
    "request.query-decoded": ('request.query["b"] == "x y"', "full"),
    "request.query-blank": ('request.query["flag"] == ""', "full"),
    "request.query-size": ("size(request.query) == 3", "full"),
    "request.host-lower-case-no-port": ('request.host == "api.shop.test"', "full"),
    "request.scheme": ('request.scheme == "https"', "full"),
    "request.protocol": ('request.protocol == "HTTP/2"', "full"),
    "request.id": ('request.id == "req-42"', "full"),
    "request.headers-lower-case-names": ('request.headers["x-region"] == "eu"', "full"),
    "request.headers-no-upper-case-names": ('!("X-Region" in request.headers)', "full"),
    "request.time-from-check-request": (
        'request.time == timestamp("2026-06-01T11:59:58.250Z")',
        "full",
    ),
    "request.auth.claims-number": ("request.auth.claims.level == 3", "full"),
    "request.auth.claims-nested": ('request.auth.claims.org.id == "o1"', "full"),
    "request.auth.claims-index": ('request.auth.claims["sub"] == "alice"', "full"),
    "request.auth.principal": ('request.auth.principal == "https://idp.test/alice"', "full"),
    "request.auth.audiences": ('request.auth.audiences == ["shop-api", "other"]', "full"),
    "request.auth.roles": ('request.auth.roles == ["vendor:staff", "reader"]', "full"),
    "request.auth.tenant": ('request.auth.tenant == "acme"', "full"),
    "source.principal-istio-form": (
        'source.principal == "cluster.local/ns/order/sa/api"',
        "full",
    ),
    "source.namespace": ('source.namespace == "order"', "full"),
    "source.service_account": ('source.service_account == "api"', "full"),
    "source.address": ('source.address == "10.1.2.3"', "full"),
    "source.port-int": ("source.port == 40001 && type(source.port) == int", "full"),
    "destination.address": ('destination.address == "10.9.8.7"', "full"),
    "destination.port-int": ("destination.port == 8443 && type(destination.port) == int", "full"),
    "destination.principal-istio-form": (
        'destination.principal == "cluster.local/ns/shop/sa/frontend"',
        "full",
    ),
    "tenant": ('tenant == "acme"', "full"),
    "context": ('context["k"] == "v" && size(context) == 1', "full"),
    "now-fixed": ('now == timestamp("2026-06-01T12:00:00Z")', "full"),
    "now-after-request-time": ("now - request.time == duration('1.75s')", "full"),
    # without a token: empty values, never errors
    "anonymous-request.auth.claims-empty": ("size(request.auth.claims) == 0", "anonymous"),
    "anonymous-request.auth.principal-empty": ('request.auth.principal == ""', "anonymous"),
    "anonymous-request.auth.audiences-empty": ("request.auth.audiences == []", "anonymous"),
    "anonymous-request.auth.roles-empty": ("size(request.auth.roles) == 0", "anonymous"),
    "anonymous-request.auth.tenant-empty": ('request.auth.tenant == ""', "anonymous"),
    "anonymous-tenant-from-header": ('tenant == "globex"', "anonymous"),
    "anonymous-source.principal-empty": ('source.principal == ""', "anonymous"),
    "anonymous-source.namespace-empty": ('source.namespace == ""', "anonymous"),
    "anonymous-context-empty": ("size(context) == 0", "anonymous"),
}


def _rules(negate: bool) -> str:
    lines = []
    for number, (expression, _) in enumerate(VARIABLES.values()):
        when = f"!({expression})" if negate else expression
        lines += [
            f"    - name: v{number}",
            "      action: AUDIT",
            f"      when: {json.dumps(when)}",
        ]
    return "\n".join(lines)


def _bundle(root: Path, key: SigningKey, negate: bool) -> Snapshot:
    policy = (
        "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: vars}\nspec:\n  rules:\n"
        + _rules(negate)
        + "\n"
    )
    return compile_bundle(root, {"i.yaml": ISSUER_YAML, "t.yaml": TENANCY, "p.yaml": policy}, key)


def _full(key: SigningKey) -> dict[str, Any]:
    token = key.token(
        sub="alice",
        tenant="acme",
        roles=["vendor:staff", "reader"],
        level=3,
        org={"id": "o1"},
        aud=["shop-api", "other"],
    )
    return {
        "method": "post",
        "path": "/Api//v1/./items/%41b?a=1&a=2&b=x%20y&flag",
        "host": "API.Shop.Test:8443",
        "headers": {"X-Region": "eu"},
        "token": token,
        "principal": "spiffe://cluster.local/ns/order/sa/api",
        "source": ("10.1.2.3", 40001),
        "destination": ("10.9.8.7", 8443),
        "destination_principal": "spiffe://cluster.local/ns/shop/sa/frontend",
        "context": {"k": "v"},
        "time": "2026-06-01T11:59:58.250Z",
        "scheme": "https",
        "protocol": "HTTP/2",
        "id": "req-42",
    }


ANONYMOUS: dict[str, Any] = {"path": "/x", "headers": {"x-tenant-id": "globex"}}


@pytest.fixture(scope="module")
def decisions(tmp_path_factory: pytest.TempPathFactory, key: SigningKey) -> dict[str, Decision]:
    """(negated?, request) -> the decision of that request on that bundle."""
    found = {}
    for negate in (False, True):
        root = tmp_path_factory.mktemp("vars") / "bundle"
        snapshot = _bundle(root, key, negate)
        for name, request in (("full", _full(key)), ("anonymous", ANONYMOUS)):
            found[f"{negate}-{name}"] = decide(snapshot, attributes(**request), NOW)
    return found


@pytest.mark.parametrize("name", VARIABLES)
def test_variable(decisions: dict[str, Decision], name: str) -> None:
    rule = f"vars/v{list(VARIABLES).index(name)}"
    request = VARIABLES[name][1]
    held, negated = decisions[f"False-{request}"], decisions[f"True-{request}"]
    assert rule not in held.cel_errors
    assert rule in held.audit, f"{VARIABLES[name][0]} is false"
    assert rule not in negated.audit


def test_every_declared_variable_is_covered() -> None:
    expressions = " ".join(expression for expression, _ in VARIABLES.values())
    assert [name for name in DECLARED if name not in expressions] == []


def test_headers_from_header_map(tmp_path: Path, key: SigningKey) -> None:
    """Envoy may send ``header_map`` (raw values) instead of ``headers``."""
    snapshot = compile_bundle(
        tmp_path,
        {
            "p.yaml": "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
            "  rules:\n    - name: r\n"
            "      when: request.headers['x-region'] == 'eu,us' && request.path == '/a'\n"
        },
    )
    message = check_request(path="/a")
    message.attributes.request.http.headers.clear()
    header_map = message.attributes.request.http.header_map
    for name, value in ((":path", b"/a"), ("X-Region", b"eu"), ("x-region", b"us")):
        header_map.headers.append(base_pb2.HeaderValue(key=name, raw_value=value))
    message.attributes.request.http.path = ""
    decision = decide(snapshot, from_check_request(message), NOW)
    assert (decision.reason.value, decision.rule) == ("allowed", "p/r")
