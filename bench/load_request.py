"""The request the load test replays: one realistic CheckRequest, framed for gRPC.

It has the shape Envoy's ext_authz filter sends for a client request (peer addresses,
request time, the HTTP attributes and the lower-case header map including pseudo
headers). ``frame`` adds the 5-byte gRPC length prefix so h2load can POST it as is.
"""

from __future__ import annotations

import struct
import time
import uuid

from authz._proto.envoy.config.core.v3 import address_pb2
from authz._proto.envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2

__all__ = ["CHECK_METHOD", "check_request", "frame", "unframe"]

CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"


def _peer(address: str, port: int) -> attribute_context_pb2.AttributeContext.Peer:
    socket_address = address_pb2.SocketAddress(address=address, port_value=port)
    return attribute_context_pb2.AttributeContext.Peer(
        address=address_pb2.Address(socket_address=socket_address)
    )


def check_request(host: str, path: str, token: str) -> external_auth_pb2.CheckRequest:
    """A CheckRequest for ``GET path`` on ``host`` carrying a bearer ``token``."""
    request_id = str(uuid.uuid4())
    headers = {
        ":authority": host,
        ":method": "GET",
        ":path": path,
        ":scheme": "http",
        "accept": "application/json",
        "authorization": f"Bearer {token}",
        "user-agent": "bench-load/1.0",
        "x-forwarded-proto": "http",
        "x-request-id": request_id,
    }
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        id=request_id,
        method="GET",
        headers=headers,
        path=path,
        host=host,
        scheme="http",
        protocol="HTTP/1.1",
    )
    request = attribute_context_pb2.AttributeContext.Request(http=http)
    request.time.FromNanoseconds(time.time_ns())
    attributes = attribute_context_pb2.AttributeContext(
        source=_peer("127.0.0.1", 51234),
        destination=_peer("127.0.0.1", 10000),
        request=request,
    )
    return external_auth_pb2.CheckRequest(attributes=attributes)


def frame(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return struct.pack(">BI", 0, len(message)) + message


def unframe(data: bytes) -> bytes:
    """The payload of a single uncompressed gRPC message (inverse of :func:`frame`)."""
    compressed, length = struct.unpack(">BI", data[:5])
    if compressed or len(data) != 5 + length:
        raise ValueError("not exactly one uncompressed gRPC message")
    return data[5:]
