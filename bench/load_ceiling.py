"""The ceiling for the load test: a bare ``grpc.aio`` server that always says OK.

It registers ``envoy.service.auth.v3.Authorization/Check`` through a generic handler
with no (de)serialisers and answers every call with the same prebuilt OK
CheckResponse bytes, without reading the request. Whatever our server achieves is
measured against this: the cost of gRPC in Python with no work at all.

Run as ``python -m bench.load_ceiling --listen 127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authz import loops
from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz._proto.google.rpc import status_pb2

__all__ = ["OK_RESPONSE", "main", "serve"]

OK_RESPONSE: bytes = external_auth_pb2.CheckResponse(
    status=status_pb2.Status(code=0),
    ok_response=external_auth_pb2.OkHttpResponse(),
).SerializeToString()


async def _check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return OK_RESPONSE


async def serve(listen: str) -> None:
    """Serve until SIGTERM/SIGINT."""
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "envoy.service.auth.v3.Authorization",
        {"Check": grpc.unary_unary_rpc_method_handler(_check)},
    )
    server.add_generic_rpc_handlers((handler,))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(listen)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.load_ceiling", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:9292")
    parser.add_argument("--loop", choices=loops.LOOPS, default=loops.DEFAULT_LOOP)
    args = parser.parse_args(argv)
    loops.run(serve(args.listen), args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
