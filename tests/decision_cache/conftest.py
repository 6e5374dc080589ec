"""Fixtures of the decision-cache tests: a trusted key, workload certificates, the bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.decision_cache.bundle import certificates, install
from tests.pki import Issued
from tests.policy.bundles import SigningKey


@pytest.fixture(scope="session")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="session")
def certs() -> tuple[Issued, Issued]:
    """(revoked, good)"""
    return certificates()


@pytest.fixture(scope="session")
def bundle(
    tmp_path_factory: pytest.TempPathFactory, key: SigningKey, certs: tuple[Issued, Issued]
) -> Path:
    return install(tmp_path_factory.mktemp("cache") / "bundle", key, certs[0])
