"""The Istio side: the extension provider, the CUSTOM policies that use it, mTLS.

The pieces live in different files (the mesh config for istioctl, the overlay for
kubectl) and must agree: the provider the policies name, the Service and port the
provider names, the gateways the NetworkPolicy admits. The negative cases show
that the Istio schemas in this package refuse what Istio would misread.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.deploy import istio_schemas
from tests.deploy.manifests import DEPLOY, Manifest, find, load_documents, one

MESH_CONFIG = DEPLOY / "mesh" / "istio-operator.yaml"
INGRESS_NAMESPACE = "istio-system"
ROOT_NAMESPACE = "istio-system"  # Istio's default root namespace: mesh-wide policies


def _provider() -> dict[str, Any]:
    (operator,) = load_documents(MESH_CONFIG)
    (provider,) = operator["spec"]["meshConfig"]["extensionProviders"]
    return dict(provider)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)s", duration)
    assert match, f"not a duration in seconds: {duration!r}"
    return float(match.group(1))


def _custom_policies(objects: list[Manifest]) -> list[Manifest]:
    return [p for p in find(objects, "AuthorizationPolicy") if p["spec"]["action"] == "CUSTOM"]


def test_the_provider_names_the_authz_service(istio: list[Manifest]) -> None:
    grpc = _provider()["envoyExtAuthzGrpc"]
    service = one(istio, "Service", "authz")
    namespace = service["metadata"]["namespace"]
    assert grpc["service"] == f"authz.{namespace}.svc.cluster.local"
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    assert port["appProtocol"] == "grpc"
    assert grpc["port"] == port["port"]
    (container,) = one(istio, "Deployment")["spec"]["template"]["spec"]["containers"]
    (container_port,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    assert container_port["containerPort"] == grpc["port"]


def test_the_provider_fails_closed_within_a_short_timeout() -> None:
    grpc = _provider()["envoyExtAuthzGrpc"]
    assert grpc["failOpen"] is False  # written out, not left to the default
    assert 0 < _seconds(grpc["timeout"]) <= 1  # Istio's default is 600 s
    assert grpc["statusOnError"] == "403"
    assert "includeRequestBodyInCheck" not in grpc  # authz never reads bodies


def test_every_custom_policy_names_the_provider(istio: list[Manifest]) -> None:
    policies = _custom_policies(istio)
    assert {p["metadata"]["namespace"] for p in policies} == {INGRESS_NAMESPACE, "payment"}
    for policy in policies:
        assert policy["spec"]["provider"]["name"] == _provider()["name"]
        # Everything the workloads receive is checked: a narrower selection is a bypass.
        assert policy["spec"]["rules"] == [{}]


def test_no_istio_policy_selects_authz_itself(istio: list[Manifest]) -> None:
    """A policy reaches authz's pods from their namespace or from the root namespace."""
    deployment = one(istio, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    reaching = {deployment["metadata"]["namespace"], ROOT_NAMESPACE}
    for kind in ("AuthorizationPolicy", "PeerAuthentication"):
        for policy in find(istio, kind):
            if policy["metadata"]["namespace"] not in reaching:
                continue
            selector = policy["spec"].get("selector", {}).get("matchLabels", {})
            name = f"{kind} {policy['metadata']['name']}"
            assert selector, f"{name} would cover every workload it reaches"
            assert not selector.items() <= pod_labels.items(), f"{name} selects authz"


def test_the_gateway_that_checks_may_reach_authz(istio: list[Manifest]) -> None:
    (edge,) = [
        p for p in _custom_policies(istio) if p["metadata"]["namespace"] == INGRESS_NAMESPACE
    ]
    gateway = edge["spec"]["selector"]["matchLabels"]
    grpc_rule = one(istio, "NetworkPolicy")["spec"]["ingress"][0]
    assert [p["port"] for p in grpc_rule["ports"]] == ["grpc"]
    admitted = [
        peer["podSelector"]["matchLabels"]
        for peer in grpc_rule["from"]
        if peer.get("namespaceSelector", {})
        .get("matchLabels", {})
        .get("kubernetes.io/metadata.name")
        == INGRESS_NAMESPACE
    ]
    assert admitted == [gateway]


def test_protected_namespaces_require_mtls(istio: list[Manifest]) -> None:
    strict = {
        p["metadata"]["namespace"]
        for p in find(istio, "PeerAuthentication")
        if p["spec"]["mtls"]["mode"] == "STRICT" and "selector" not in p["spec"]
    }
    protected = {p["metadata"]["namespace"] for p in _custom_policies(istio)}
    # The gateway receives clients from outside the mesh: no mTLS there.
    assert protected - {INGRESS_NAMESPACE} <= strict


def test_sidecars_call_authz_in_plaintext(istio: list[Manifest]) -> None:
    rule = one(istio, "DestinationRule", "authz")["spec"]
    service = one(istio, "Service", "authz")["metadata"]
    assert rule["host"] == f"{service['name']}.{service['namespace']}.svc.cluster.local"
    assert rule["trafficPolicy"]["tls"]["mode"] == "DISABLE"  # authz pods have no sidecar


def _mutated(obj: Manifest, path: str, value: Any) -> Manifest:
    changed = copy.deepcopy(obj)
    node: Any = changed
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.provider", None, "'provider' is a required property"),
        ("spec.action", "ALLOWED", "is not one of"),
        ("spec.selecter", {"matchLabels": {"app": "x"}}, "'selecter' was unexpected"),
        ("spec.rules.0.to", [{"operation": {"path": ["/a"]}}], "'path' was unexpected"),
    ],
)
def test_a_wrong_authorization_policy_is_refused(
    istio: list[Manifest], path: str, value: Any, expected: str
) -> None:
    policy = _custom_policies(istio)[0]
    assert istio_schemas.problems(policy) == []
    assert any(expected in p for p in istio_schemas.problems(_mutated(policy, path, value)))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("includeRequestHeadersInCheck", ["authorization"], "was unexpected"),
        ("timeout", "500ms", "does not match"),
        ("port", "9191", "is not of type 'integer'"),
        ("failOpen", "false", "is not of type 'boolean'"),
    ],
)
def test_a_wrong_provider_is_refused(field: str, value: Any, expected: str) -> None:
    (operator,) = load_documents(MESH_CONFIG)
    assert istio_schemas.problems(operator) == []
    path = f"spec.meshConfig.extensionProviders.0.envoyExtAuthzGrpc.{field}"
    assert any(expected in p for p in istio_schemas.problems(_mutated(operator, path, value)))
