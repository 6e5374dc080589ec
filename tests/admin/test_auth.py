"""Who may call the admin API: the configuration rules, bearer tokens, mTLS."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import aiohttp
import pytest

from authz.admin import AdminConfig, start_admin
from authz.config import ConfigError
from authz.reload import Reloader
from authz.store import SnapshotStore
from tests.admin.certs import CLIENT_SPIFFE, Pki, make_pki
from tests.admin.client import TOKEN
from tests.admin.conftest import Admin, make_store
from tests.engine.shop import install_shop
from tests.policy.bundles import SigningKey

F = Path("/f")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(dict(listen="9192"), "admin-listen: expected HOST:PORT", id="no-host"),
        pytest.param(dict(listen="h:99999"), "admin-listen: expected HOST:PORT", id="port"),
        pytest.param(dict(), "must authenticate", id="default-loopback"),
        pytest.param(dict(listen="localhost:0"), "must authenticate", id="localhost"),
        pytest.param(dict(listen="0.0.0.0:9192"), "must authenticate", id="any-v4"),
        pytest.param(dict(listen="[::]:9192"), "must authenticate", id="any-v6"),
        pytest.param(dict(listen="10.0.0.5:9192"), "must authenticate", id="pod-ip"),
        pytest.param(dict(listen="admin.example:9192"), "must authenticate", id="name"),
        pytest.param(
            dict(listen="0.0.0.0:9192", tls_cert=F, tls_key=F), "must authenticate", id="tls-only"
        ),
        pytest.param(dict(tls_cert=F), "give both or neither", id="cert-no-key"),
        pytest.param(dict(client_ca=F), "mTLS needs admin-tls-cert", id="ca-without-tls"),
    ],
)
def test_config_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AdminConfig(**config)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(dict(token_file=F), id="default-loopback-with-token"),
        pytest.param(dict(listen="[::1]:9192", token_file=F), id="loopback-v6-with-token"),
        pytest.param(dict(listen="0.0.0.0:9192", token_file=F), id="any-with-token"),
        pytest.param(
            dict(listen="0.0.0.0:9192", tls_cert=F, tls_key=F, client_ca=F), id="any-with-mtls"
        ),
    ],
)
def test_config_accepted(config: dict[str, object]) -> None:
    AdminConfig(**config)  # type: ignore[arg-type]


async def test_unauthenticated_is_401_with_a_bearer_challenge(admin: Admin) -> None:
    answer = await admin.client.call("GET", "/v1/status", token=None)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "active_version" not in answer.body


@pytest.mark.parametrize(
    ("header"),
    [
        pytest.param(f"Bearer {TOKEN}x", id="longer"),
        pytest.param(f"Bearer {TOKEN[:-1]}", id="shorter"),
        pytest.param(f"Basic {TOKEN}", id="basic"),
        pytest.param("Bearer ", id="empty"),
        pytest.param("Bearer tökén", id="non-ascii"),
    ],
)
async def test_a_wrong_token_is_401(admin: Admin, header: str) -> None:
    for method, path in (("GET", "/v1/status"), ("POST", "/v1/unpin"), ("GET", "/nothing")):
        answer = await admin.client.call(
            method, path, {}, token=None, headers={"Authorization": header}
        )
        assert answer.status == 401, (method, path)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("mode", "content", "message"),
    [
        pytest.param(0o644, TOKEN, "accessible by others", id="world-readable"),
        pytest.param(0o602, TOKEN, "accessible by others", id="world-writable"),
        pytest.param(0o600, "short", "at least 16 characters", id="short"),
        pytest.param(0o600, "  \n", "at least 16 characters", id="empty"),
    ],
)
async def test_an_unsafe_token_file_is_refused(
    tmp_path: Path, key: SigningKey, mode: int, content: str, message: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    token_file.chmod(mode)
    store, reloader = _store(tmp_path, key)
    with pytest.raises(ConfigError, match=message):
        await start_admin(store, reloader, AdminConfig("127.0.0.1:0", token_file=token_file))


async def test_a_missing_token_file_is_refused(tmp_path: Path, key: SigningKey) -> None:
    store, reloader = _store(tmp_path, key)
    config = AdminConfig("127.0.0.1:0", token_file=tmp_path / "absent")
    with pytest.raises(ConfigError, match="admin-token-file: cannot read"):
        await start_admin(store, reloader, config)


async def test_a_taken_port_is_a_config_error(
    admin: Admin, key: SigningKey, tmp_path: Path
) -> None:
    store, reloader = _store(tmp_path, key)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    config = AdminConfig(f"127.0.0.1:{admin.server.port}", token_file=token_file)
    with pytest.raises(ConfigError, match=r"admin-listen: cannot listen on 127\.0\.0\.1:"):
        await start_admin(store, reloader, config)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_mtls_identifies_the_caller_by_certificate(
    tmp_path: Path, key: SigningKey, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authz.admin")
    store, reloader = _store(tmp_path, key)
    config = AdminConfig(
        "127.0.0.1:0", tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca
    )
    server = await start_admin(store, reloader, config)
    url = f"https://127.0.0.1:{server.port}"
    try:
        trusted = _client_context(pki, pki.client_cert, pki.client_key)
        async with aiohttp.ClientSession() as session:
            body = {"name": "inc", "reason": "r"}
            async with session.post(f"{url}/v1/lockdown", json=body, ssl=trusted) as response:
                assert response.status == 200
            for context in (
                _client_context(pki, None, None),
                _client_context(pki, pki.stranger_cert, pki.stranger_key),
            ):
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(f"{url}/v1/status", ssl=context) as response:
                        await response.read()
    finally:
        await server.stop()
    (entry,) = store.lockdowns
    assert entry.actor == f"CN=ops-admin (URI:{CLIENT_SPIFFE})"
    assert f"by CN=ops-admin (URI:{CLIENT_SPIFFE}): 200" in caplog.text


def _client_context(pki: Pki, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def _store(tmp_path: Path, key: SigningKey) -> tuple[SnapshotStore, Reloader]:
    return make_store(install_shop(tmp_path / "bundle", key))
