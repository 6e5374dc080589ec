"""Who gets through the TLS handshake: only clients with a certificate from the client CA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.pki import CertificateAuthority, Issued
from tests.server.serving import Server, serving
from tests.tls.clients import FRESH, channel, check, credentials
from tests.tls.conftest import GATEWAY
from tests.tls.files import InPlace, server_files, tls_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")


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
    async with serving(bundle, credentials(ca, gateway), **tls_settings(volume)) as running:
        yield running


async def test_a_certificate_from_the_client_ca_is_served(server: Server) -> None:
    assert await check(server.channel) == 0


async def test_any_identity_from_the_client_ca_may_call_without_an_allow_list(
    server: Server, ca: CertificateAuthority
) -> None:
    anyone = ca.issue("batch", uris=["spiffe://cluster.local/ns/legacy/sa/batch"])
    async with channel(server.port, ca, anyone) as batch:
        assert await check(batch) == 0


Connect = Callable[[int, CertificateAuthority], grpc.aio.Channel]


def _plaintext(port: int, ca: CertificateAuthority) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=FRESH)


def _without_certificate(port: int, ca: CertificateAuthority) -> grpc.aio.Channel:
    return channel(port, ca, None)


def _from_another_ca(port: int, ca: CertificateAuthority) -> grpc.aio.Channel:
    # The gateway's very SPIFFE ID, signed by a CA the server does not trust.
    impostor = CertificateAuthority("other-ca").issue("impostor", uris=[GATEWAY])
    return channel(port, ca, impostor)


@pytest.mark.parametrize(
    "connect",
    [
        pytest.param(_plaintext, id="plaintext"),
        pytest.param(_without_certificate, id="no-client-certificate"),
        pytest.param(_from_another_ca, id="certificate-from-another-ca"),
    ],
)
async def test_refused_at_the_handshake(
    server: Server, ca: CertificateAuthority, connect: Connect
) -> None:
    async with connect(server.port, ca) as refused:
        with pytest.raises(grpc.aio.AioRpcError) as check_failed:
            await check(refused)
        with pytest.raises(grpc.aio.AioRpcError) as health_failed:
            await health_pb2_grpc.HealthStub(refused).Check(health_pb2.HealthCheckRequest())
    assert check_failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert health_failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await check(server.channel) == 0  # the server itself is fine
