"""Fixtures of the policy tests: one real signing key per session."""

from __future__ import annotations

import pytest

from tests.policy.bundles import SigningKey


@pytest.fixture(scope="session")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("key"))
