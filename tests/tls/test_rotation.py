"""Certificate rotation on disk: new connections get the new files, open ones carry on.

The server's files are replaced while a client keeps calling Check on one connection:
no call fails, that connection never leaves READY, and the next TLS handshake
presents the new certificate. Replacements that cannot serve are refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from tests.pki import CertificateAuthority, Issued
from tests.server.serving import serving
from tests.tls.clients import Caller, channel, check, credentials, served_serial
from tests.tls.files import (
    CA,
    CERT,
    KEY,
    SERVER_IPS,
    InPlace,
    SecretVolume,
    Volume,
    server_files,
    tls_settings,
)

pytestmark = pytest.mark.asyncio

REFUSED = "tls: refused the files on disk"


@pytest.mark.parametrize(
    "make_volume",
    [
        pytest.param(InPlace, id="rewritten-in-place"),
        pytest.param(SecretVolume, id="secret-volume"),
    ],
)
async def test_rotation_under_load(
    bundle: Path,
    ca: CertificateAuthority,
    server_cert: Issued,
    gateway: Issued,
    tmp_path: Path,
    make_volume: Callable[[Path], Volume],
) -> None:
    volume = make_volume(tmp_path / "tls")
    volume.publish(server_files(server_cert, ca))
    async with serving(bundle, credentials(ca, gateway), **tls_settings(volume)) as server:
        caller = Caller(server.channel)
        await caller.wait_for(20)
        ready = grpc.ChannelConnectivity.READY
        assert server.channel.get_state() == ready
        left_ready = asyncio.create_task(server.channel.wait_for_state_change(ready))

        renewed = ca.issue("authz", ips=SERVER_IPS)
        volume.publish(server_files(renewed, ca))
        assert await served_serial(server.port, ca, gateway) == renewed.serial
        async with channel(server.port, ca, gateway) as fresh:
            assert await check(fresh) == 0
        await caller.wait_for(caller.answered + 20)
        await caller.stop()

        assert caller.failures == []
        assert server.channel.get_state() == ready
        assert not left_ready.done()  # the connection in use was never dropped
        left_ready.cancel()


def _key_of_another_certificate(ca: CertificateAuthority, served: Issued) -> dict[str, bytes]:
    return {CERT: ca.issue("authz", ips=SERVER_IPS).cert_pem()}  # the old key stays


def _not_pem(ca: CertificateAuthority, served: Issued) -> dict[str, bytes]:
    return {KEY: b"-----BEGIN PRIVATE KEY-----\ntruncated"}


def _ca_not_pem(ca: CertificateAuthority, served: Issued) -> dict[str, bytes]:
    return {CA: b""}


@pytest.mark.parametrize(
    ("breakage", "logged"),
    [
        pytest.param(_key_of_another_certificate, "not the private key of", id="mismatched-key"),
        pytest.param(_not_pem, "not an unencrypted PEM private key", id="key-not-pem"),
        pytest.param(_ca_not_pem, "no PEM CA certificate", id="empty-client-ca"),
    ],
)
async def test_a_broken_replacement_is_refused_and_the_old_pair_keeps_serving(
    bundle: Path,
    ca: CertificateAuthority,
    server_cert: Issued,
    gateway: Issued,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    breakage: Callable[[CertificateAuthority, Issued], dict[str, bytes]],
    logged: str,
) -> None:
    caplog.set_level(logging.INFO, logger="authz.tls")
    volume = InPlace(tmp_path / "tls")
    volume.publish(server_files(server_cert, ca))
    async with serving(bundle, credentials(ca, gateway), **tls_settings(volume)) as server:
        volume.publish(breakage(ca, server_cert))
        assert await served_serial(server.port, ca, gateway) == server_cert.serial
        async with channel(server.port, ca, gateway) as fresh:
            assert await check(fresh) == 0
        refusals = [r.getMessage() for r in caplog.records if REFUSED in r.getMessage()]
        assert len(refusals) == 1  # logged once, not on every handshake
        assert logged in refusals[0]
        assert "PRIVATE KEY-----" not in caplog.text

        repaired = ca.issue("authz", ips=SERVER_IPS)
        volume.publish(server_files(repaired, ca))
        assert await served_serial(server.port, ca, gateway) == repaired.serial


async def test_a_missing_file_is_refused_and_the_old_pair_keeps_serving(
    bundle: Path,
    ca: CertificateAuthority,
    server_cert: Issued,
    gateway: Issued,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    volume = InPlace(tmp_path / "tls")
    volume.publish(server_files(server_cert, ca))
    async with serving(bundle, credentials(ca, gateway), **tls_settings(volume)) as server:
        (volume.path / KEY).unlink()
        assert await served_serial(server.port, ca, gateway) == server_cert.serial
        assert f"{REFUSED} (cannot read {volume.path / KEY}" in caplog.text


async def test_client_ca_rotation(
    bundle: Path, ca: CertificateAuthority, server_cert: Issued, tmp_path: Path
) -> None:
    new_ca = CertificateAuthority("mesh-ca-2")
    old_client = ca.issue("old", uris=["spiffe://cluster.local/ns/a/sa/old"])
    new_client = new_ca.issue("new", uris=["spiffe://cluster.local/ns/a/sa/new"])
    volume = SecretVolume(tmp_path / "tls")
    volume.publish(server_files(server_cert, ca))
    async with serving(bundle, credentials(ca, old_client), **tls_settings(volume)) as server:
        assert await check(server.channel) == 0
        async with channel(server.port, ca, new_client) as refused:
            with pytest.raises(grpc.aio.AioRpcError):
                await check(refused)

        volume.publish(server_files(server_cert, new_ca))

        async with channel(server.port, ca, new_client) as accepted:
            assert await check(accepted) == 0
        async with channel(server.port, ca, old_client) as refused:
            with pytest.raises(grpc.aio.AioRpcError):
                await check(refused)
        assert await check(server.channel) == 0  # connected before: not dropped
