"""Fixtures of the shadow tests: a trusted key, the active bundle and a shadow directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policy.bundles import SigningKey
from tests.shadow import bundles


@pytest.fixture(scope="session")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("key"))


@pytest.fixture
def active(tmp_path: Path, key: SigningKey) -> Path:
    """The active bundle, in its own directory."""
    return bundles.active(tmp_path / "active", key)


@pytest.fixture
def candidate(tmp_path: Path, key: SigningKey) -> Path:
    """The candidate bundle, in its own directory."""
    return bundles.candidate(tmp_path / "candidate", key)
