"""Fixtures of the admin API tests: the shop bundle in a real store, a token, the admin API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from authz.admin import AdminConfig, AdminServer, start_admin
from authz.policy.bundle import load_bundle
from authz.reload import Reloader
from authz.store import SnapshotStore
from tests.admin.client import TOKEN, Client
from tests.engine.shop import install_shop
from tests.policy.bundles import SigningKey


@pytest.fixture(scope="session")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("key"))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@dataclass
class Admin:
    """A running admin API over a store of the shop bundle."""

    server: AdminServer
    store: SnapshotStore
    reloader: Reloader
    bundle: Path
    client: Client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest_asyncio.fixture
async def admin(
    tmp_path: Path, key: SigningKey, token_file: Path, session: aiohttp.ClientSession
) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path / "a", key, token_file, session) as started:
        yield started


def make_store(bundle: Path) -> tuple[SnapshotStore, Reloader]:
    """A store of ``bundle`` and its reloader (never run: tests reload explicitly)."""
    store = SnapshotStore(load_bundle(bundle), bundle_dir=bundle)
    return store, Reloader(store, bundle)


@contextlib.asynccontextmanager
async def running_admin(
    directory: Path, key: SigningKey, token_file: Path, session: aiohttp.ClientSession
) -> AsyncIterator[Admin]:
    """The admin API on 127.0.0.1:0 over a fresh copy of the shop bundle."""
    bundle = install_shop(directory / "bundle", key)
    store, reloader = make_store(bundle)
    config = AdminConfig(listen="127.0.0.1:0", token_file=token_file)
    server = await start_admin(store, reloader, config)
    try:
        url = f"http://127.0.0.1:{server.port}"
        yield Admin(server, store, reloader, bundle, Client(session, url))
    finally:
        await server.stop()
