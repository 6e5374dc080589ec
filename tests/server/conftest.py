"""Fixtures of the server tests: the shop bundle, a trusted key, the running server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.engine.shop import install_shop
from tests.policy.bundles import SigningKey
from tests.server.serving import Server, serving


@pytest.fixture(scope="session")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, key: SigningKey) -> Path:
    return install_shop(tmp_path_factory.mktemp("shop") / "bundle", key)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(bundle: Path) -> AsyncIterator[Server]:
    """The real server, once per test module (on that module's event loop)."""
    async with serving(bundle) as running:
        yield running
