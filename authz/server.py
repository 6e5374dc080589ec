"""The gRPC edge: Envoy's Authorization/Check and grpc.health.v1, nothing else.

Bytes in, request attributes, ``decide``, CheckResponse bytes out. Any failure
between the bytes and the decision becomes a deny (``403 internal_error``);
a message that is not a CheckRequest is refused with INVALID_ARGUMENT, which
Envoy (``failure_mode_allow: false``) turns into a denial too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.config import ServerConfig
from authz.decision import Decision, Reason, new_decision_id
from authz.engine import decide
from authz.policy.bundle import Snapshot, load_bundle
from authz.request import from_check_request
from authz.response import ResponseTemplates, check_response

__all__ = ["CHECK_METHOD", "SERVICE_NAME", "AuthorizationService", "run_server"]

SERVICE_NAME = "envoy.service.auth.v3.Authorization"
CHECK_METHOD = f"/{SERVICE_NAME}/Check"
_log = logging.getLogger("authz.server")
_CheckRequest = external_auth_pb2.CheckRequest
_NO_HEADERS: Mapping[str, str] = {}


class AuthorizationService:
    """Answers Check from the current snapshot (one reference, swapped whole on reload)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.responses = ResponseTemplates()

    async def check(self, payload: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """One Check call, raw bytes both ways so malformed input is ours to answer."""
        try:
            message = _CheckRequest.FromString(payload)
        except DecodeError:
            _log.warning("refused a malformed CheckRequest (%d bytes)", len(payload))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed CheckRequest")
        return self.respond(message)

    def respond(self, message: Any) -> bytes:
        """Decide ``message``; the serialised CheckResponse. Never raises, never allows on error."""
        snapshot = self.snapshot
        decision_id = new_decision_id()
        headers: Mapping[str, str] = _NO_HEADERS
        try:
            attributes = from_check_request(message)
            if attributes.http is not None:
                headers = attributes.http.headers
            decision = decide(snapshot, attributes, datetime.now(UTC))
        except Exception as exc:
            _internal_error("deciding", decision_id, exc)
            decision = Decision(Reason.INTERNAL_ERROR)
        if decision.cel_errors:
            _log.warning(
                "decision %s: CEL runtime error in rule(s) %s (failed closed)",
                decision_id,
                ", ".join(decision.cel_errors),
            )
        try:
            return self.responses.encode(decision, decision_id, snapshot.version, headers)
        except Exception as exc:  # e.g. a claim that cannot be encoded as UTF-8
            _internal_error("encoding the response", decision_id, exc)
            failed = Decision(Reason.INTERNAL_ERROR)
            return check_response(failed, decision_id, snapshot.version, _NO_HEADERS)

    def handler(self) -> grpc.GenericRpcHandler:
        """A generic handler so deserialisation errors reach :meth:`check`."""
        method = grpc.unary_unary_rpc_method_handler(self.check)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"Check": method})


def _internal_error(stage: str, decision_id: str, exc: Exception) -> None:
    """Log where it failed, without the exception's message: it could quote a
    header or a claim, and tokens never reach the logs."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{f.name} ({f.filename}:{f.lineno})" for f in reversed(frames))
    _log.error(
        "internal error while %s for decision %s (denied): %s at %s",
        stage,
        decision_id,
        type(exc).__name__,
        where,
    )


async def run_server(
    config: ServerConfig, ready: Callable[[int], Awaitable[None]] | None = None
) -> None:
    """Load the bundle, serve until SIGTERM/SIGINT, then drain within the grace period."""
    snapshot = load_bundle(config.policies, token_cache_size=config.token_cache_size)
    service = AuthorizationService(snapshot)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((service.handler(),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(config.listen)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    _log.info(
        "serving on %s policy_version=%s rules=%d",
        _bound(config.listen, port),
        snapshot.version,
        len(snapshot.rules.rules),
    )
    if ready is not None:
        await ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    _log.info("stopping: draining in-flight calls for up to %.1fs", config.grace_seconds)
    await health.enter_graceful_shutdown()
    await server.stop(config.grace_seconds)
    _log.info("stopped")


def _bound(listen: str, port: int) -> str:
    host = listen.rpartition(":")[0]
    return f"{host}:{port}"
