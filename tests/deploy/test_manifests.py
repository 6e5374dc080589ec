"""Every manifest in deploy/ is valid, listed by its kustomization, and consistent.

Each YAML file is checked against the Kubernetes schemas (or Istio's, for Istio
kinds) on its own, and so is every object of each built overlay: the build is
what reaches the API server. The references between objects (a Service's
selector, a volume's ConfigMap, a NetworkPolicy's named port) must resolve
inside the build, since a dangling one is accepted by the API server and fails
only at run time.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import (
    DEPLOY,
    KUBERNETES_VERSIONS,
    REPO,
    Manifest,
    find,
    load_documents,
    one,
    problems,
)

# Not part of a kustomization: the mesh config is istioctl's (or Helm's) input.
NOT_KUSTOMIZED = {DEPLOY / "mesh" / "istio-operator.yaml"}
# Referenced by the Deployment but never committed: created by the operator.
EXTERNAL_SECRETS = {"authz-admin-token"}

# Not Kubernetes objects: Prometheus rule files, checked by promtool (tests/telemetry).
RULE_FILES = DEPLOY / "prometheus"

MANIFEST_FILES = sorted(
    path
    for path in DEPLOY.rglob("*.yaml")
    if path.name != "kustomization.yaml"
    and "bundle" not in path.relative_to(DEPLOY).parts
    and RULE_FILES not in path.parents
)
KUSTOMIZATIONS = sorted(DEPLOY.rglob("kustomization.yaml"))


def _id(path: Path) -> str:
    return path.relative_to(DEPLOY).as_posix()


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFEST_FILES, ids=_id)
def test_every_file_is_valid(path: Path, version: str) -> None:
    documents = load_documents(path)
    assert documents, f"{path} holds no object"
    found = [p for doc in documents for p in problems(doc, version)]
    assert found == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", ["base", "istio"])
def test_every_built_object_is_valid(
    overlay: str, version: str, request: pytest.FixtureRequest
) -> None:
    objects: list[Manifest] = request.getfixturevalue(overlay)
    found = [p for obj in objects for p in problems(obj, version)]
    assert found == []


@pytest.mark.parametrize(
    ("path", "mistake", "expected"),
    [
        ("spec.template.spec.containers.0.securityContext", "readOnlyRootFilesytem", "unexpected"),
        ("spec", "replica", "unexpected"),
    ],
)
def test_a_misspelled_field_is_refused(
    base: list[Manifest], path: str, mistake: str, expected: str
) -> None:
    deployment = copy.deepcopy(one(base, "Deployment"))
    node: Any = deployment
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    node[mistake] = True
    for version in KUBERNETES_VERSIONS:
        assert any(expected in p for p in problems(deployment, version))


def test_every_manifest_file_is_listed_by_a_kustomization() -> None:
    listed = set(NOT_KUSTOMIZED)
    for kustomization in KUSTOMIZATIONS:
        spec = load_documents(kustomization)[0]
        for entry in spec.get("resources", []):
            target = (kustomization.parent / entry).resolve()
            assert target.exists(), f"{_id(kustomization)}: {entry} does not exist"
            if target.is_file():
                listed.add(target)
    assert set(MANIFEST_FILES) == listed


def test_the_bundle_configmap_lists_every_bundle_file() -> None:
    policies = DEPLOY / "base" / "policies"
    spec = load_documents(policies / "kustomization.yaml")[0]
    (generator,) = spec["configMapGenerator"]
    listed = {(policies / entry).resolve() for entry in generator["files"]}
    on_disk = {path.resolve() for path in (policies / "bundle").iterdir()}
    assert listed == on_disk


def test_names_the_deployment_uses_exist_in_the_build(istio: list[Manifest]) -> None:
    deployment = one(istio, "Deployment", "authz")
    pod = deployment["spec"]["template"]["spec"]
    configmaps = {o["metadata"]["name"] for o in find(istio, "ConfigMap")}
    secrets = {o["metadata"]["name"] for o in find(istio, "Secret")} | EXTERNAL_SECRETS
    for volume in pod["volumes"]:
        if "configMap" in volume:
            assert volume["configMap"]["name"] in configmaps
        if "secret" in volume:
            assert volume["secret"]["secretName"] in secrets
    one(istio, "ServiceAccount", pod["serviceAccountName"])
    namespaces = {o["metadata"]["name"] for o in find(istio, "Namespace")}
    assert deployment["metadata"]["namespace"] in namespaces


def test_the_external_secret_is_documented() -> None:
    guide = (REPO / "docs" / "kubernetes.md").read_text()
    for name in EXTERNAL_SECRETS:
        assert f"create secret generic {name}" in guide


def test_selectors_select_the_pods(istio: list[Manifest]) -> None:
    deployment = one(istio, "Deployment", "authz")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    assert selects(deployment["spec"]["selector"]["matchLabels"])
    for service in find(istio, "Service"):
        assert selects(service["spec"]["selector"]), service["metadata"]["name"]
    assert selects(one(istio, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    assert selects(one(istio, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"])
    for constraint in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"]["matchLabels"])
    target = one(istio, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_named_ports_exist_on_the_container(istio: list[Manifest]) -> None:
    (container,) = one(istio, "Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for service in find(istio, "Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, service["metadata"]["name"]
    policy = one(istio, "NetworkPolicy")["spec"]
    for rule in policy["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in ports


def test_everything_lands_in_its_namespace(istio: list[Manifest]) -> None:
    placed = {(o["kind"], o["metadata"]["name"]): o["metadata"].get("namespace") for o in istio}
    for (kind, name), namespace in placed.items():
        if kind == "Namespace":
            assert namespace is None
        elif kind in {"AuthorizationPolicy", "PeerAuthentication"}:
            # Istio resources go where they protect, never into authz's own namespace.
            assert namespace not in {None, "authz-system"}, (kind, name)
        else:
            assert namespace == "authz-system", (kind, name)


def test_the_image_is_the_project_version(base: list[Manifest]) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    (container,) = one(base, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"].rsplit(":", 1)[1] == version
