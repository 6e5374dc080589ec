"""The overlays built once per session, as ``kubectl apply -k`` would build them."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import DEPLOY, Manifest, kustomize_build


@pytest.fixture(scope="session")
def base() -> list[Manifest]:
    """``kubectl kustomize deploy/base``."""
    return kustomize_build(DEPLOY / "base")


@pytest.fixture(scope="session")
def istio() -> list[Manifest]:
    """``kubectl kustomize deploy/istio``: the base and the Istio resources."""
    return kustomize_build(DEPLOY / "istio")
