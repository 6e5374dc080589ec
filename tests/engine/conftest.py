"""Fixtures of the engine tests: real keys and the compiled shop bundle."""

from __future__ import annotations

import pytest

from authz.policy.bundle import Snapshot, load_bundle
from tests.engine.shop import Keys, install_shop
from tests.policy.bundles import SigningKey


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys.generate(tmp_path_factory)


@pytest.fixture(scope="session")
def key(keys: Keys) -> SigningKey:
    return keys.trusted


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory, key: SigningKey) -> Snapshot:
    return load_bundle(install_shop(tmp_path_factory.mktemp("shop") / "bundle", key))
