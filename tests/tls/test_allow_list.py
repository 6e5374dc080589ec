"""``--allow-client``: which certificate holders may call Check; health answers everyone."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.pki import CertificateAuthority, Issued
from tests.server.serving import Server, serving
from tests.tls.clients import channel, check, credentials
from tests.tls.conftest import GATEWAY
from tests.tls.files import InPlace, server_files, tls_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

EDGE = "spiffe://cluster.local/ns/edge/*"
ORDER = "spiffe://cluster.local/ns/order/sa/order-service"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(
    bundle: Path,
    ca: CertificateAuthority,
    server_cert: Issued,
    gateway: Issued,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Server]:
    volume = InPlace(tmp_path_factory.mktemp("tls"))
    volume.publish(server_files(server_cert, ca))
    settings = tls_settings(volume, GATEWAY, EDGE)
    async with serving(bundle, credentials(ca, gateway), **settings) as running:
        yield running


@pytest.mark.parametrize(
    "uris",
    [
        pytest.param([GATEWAY], id="exact"),
        pytest.param(["spiffe://cluster.local/ns/edge/sa/proxy"], id="prefix"),
    ],
)
async def test_listed_clients_are_served(
    server: Server, ca: CertificateAuthority, uris: list[str]
) -> None:
    async with channel(server.port, ca, ca.issue("allowed", uris=uris)) as allowed:
        assert await check(allowed) == 0


@pytest.mark.parametrize(
    ("name", "uris"),
    [
        pytest.param("order", [ORDER], id="not-listed"),
        pytest.param("gw2", [f"{GATEWAY}-2"], id="longer-than-an-exact-entry"),
        pytest.param("edge2", ["spiffe://cluster.local/ns/edge2/sa/proxy"], id="prefix-boundary"),
        # Not an X.509-SVID: which of two URIs would be the caller?
        pytest.param("two", [GATEWAY, ORDER], id="two-uri-sans"),
        pytest.param(GATEWAY, [], id="id-in-common-name-only"),
    ],
)
async def test_others_get_permission_denied_and_health_still_answers(
    server: Server, ca: CertificateAuthority, name: str, uris: list[str]
) -> None:
    async with channel(server.port, ca, ca.issue(name, uris=uris, dns=["x.test"])) as other:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await check(other)
        health = health_pb2_grpc.HealthStub(other)
        answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_refused_client_is_logged_once(
    server: Server, ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    shipping = "spiffe://cluster.local/ns/shipping/sa/shipping"
    caplog.set_level(logging.WARNING, logger="authz.callers")
    async with channel(server.port, ca, ca.issue("shipping", uris=[shipping])) as other:
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await check(other)
    refusals = [r.getMessage() for r in caplog.records if r.name == "authz.callers"]
    assert len(refusals) == 1
    assert refusals[0].startswith(f"refused Check from {shipping}: not on --allow-client")
