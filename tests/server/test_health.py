"""grpc.health.v1 next to Check (the in-process server)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.server import SERVICE_NAME
from tests.server.serving import Server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("service", ["", SERVICE_NAME], ids=["server", "authorization"])
async def test_serving(server: Server, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_unknown_service(server: Server) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
