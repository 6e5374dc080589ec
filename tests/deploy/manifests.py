"""The deployment manifests as the tests see them: files, kustomize builds, schema checks.

Kubernetes objects are checked against the Kubernetes OpenAPI schemas bundled with
``kubernetes-validate`` (strict: an unknown field is an error, offline), for the
oldest Kubernetes the manifests support and the newest the package knows. Istio's
custom resources are checked against :mod:`tests.deploy.istio_schemas`. The
overlays are built with the ``kubectl`` installed into the virtualenv (kustomize
is part of it), exactly as ``kubectl apply -k`` would build them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.deploy import istio_schemas

__all__ = [
    "DEPLOY",
    "KUBERNETES_VERSIONS",
    "REPO",
    "Manifest",
    "find",
    "kubectl",
    "kustomize_build",
    "load_documents",
    "one",
    "problems",
]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

# The oldest Kubernetes the manifests are written for (gRPC probes, the preStop sleep
# action, topology spread matchLabelKeys) and the newest schema kubernetes-validate has.
KUBERNETES_VERSIONS = ("1.30", ".".join(kubernetes_validate.latest_version().split(".")[:2]))

Manifest = dict[str, Any]


def load_documents(path: Path) -> list[Manifest]:
    """The non-empty YAML documents of one file."""
    with path.open(encoding="utf-8") as file:
        return [doc for doc in yaml.safe_load_all(file) if doc]


def kubectl() -> str:
    """The ``kubectl`` next to the running interpreter (installed by the dev extras)."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(
            "kubectl is not installed in the virtualenv (pip install -e '.[dev]')"
        )
    return found


def kustomize_build(directory: Path) -> list[Manifest]:
    """The objects ``kubectl apply -k directory`` would send, in kustomize's order."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[Manifest], kind: str) -> Iterator[Manifest]:
    """The objects of one kind."""
    return (obj for obj in objects if obj.get("kind") == kind)


def one(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single object of ``kind`` (named ``name``, if given)."""
    found = [o for o in find(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def problems(obj: Manifest, version: str) -> list[str]:
    """Schema violations of one object: Istio kinds by our schemas, the rest by Kubernetes'."""
    kind = obj.get("kind", "")
    if kind in istio_schemas.SCHEMAS:
        return istio_schemas.problems(obj)
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path)
        return [f"{kind}/{obj['metadata']['name']} at {where or '.'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []
