"""Running the real server in-process for a test, and tokens it accepts now."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from authz.audit import AuditConfig
from authz.config import ServerConfig
from authz.policy.bundle import load_bundle
from authz.server import Runtime, run_server
from tests.policy.bundles import SigningKey


@dataclass(frozen=True)
class Server:
    """A running server: its port, a channel to it, and the bundle's version."""

    port: int
    channel: Any  # grpc.aio.Channel
    stub: Any  # AuthorizationStub
    policy_version: str
    runtime: Runtime


def live_token(key: SigningKey, **claims: Any) -> str:
    """A token valid now: the server decides at the wall-clock time."""
    return key.token(now=datetime.now(UTC), **claims)


@contextlib.asynccontextmanager
async def serving(
    bundle: Path,
    credentials: grpc.ChannelCredentials | None = None,
    audit: AuditConfig | None = None,
    **settings: Any,
) -> AsyncIterator[Server]:
    """``run_server`` on 127.0.0.1:0 as a background task, stopped by SIGTERM.

    ``settings`` go to the ServerConfig; the channel uses ``credentials`` (TLS), if given;
    ``audit`` says what is recorded.

    SIGTERM goes to this very process, and only once run_server's handler is
    installed (right after ``ready``): the same path as a production shutdown.
    """
    loop = asyncio.get_running_loop()
    bound: asyncio.Future[int] = loop.create_future()
    parts: list[Runtime] = []

    async def ready(port: int) -> None:
        bound.set_result(port)

    async def started(runtime: Runtime) -> None:
        parts.append(runtime)

    config = ServerConfig(policies=bundle, listen="127.0.0.1:0", grace_seconds=0.5, **settings)
    task = asyncio.create_task(run_server(config, ready=ready, started=started, audit=audit))
    waiters: set[asyncio.Future[Any]] = {task, bound}
    done, _ = await asyncio.wait(waiters, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if bound not in done:
        task.cancel()
        raise RuntimeError(f"the server did not start: {task.exception() if done else 'timeout'}")
    if not await _signal_handler_installed(task):
        task.cancel()
        raise RuntimeError("run_server installed no SIGTERM handler")
    target = f"127.0.0.1:{bound.result()}"
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials)
    try:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        version = load_bundle(bundle).version
        for _ in range(100):  # `started` runs right after `ready`
            if parts:
                break
            await asyncio.sleep(0.01)
        yield Server(bound.result(), channel, stub, version, parts[0])
    finally:
        await channel.close()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, timeout=10)


async def _signal_handler_installed(task: asyncio.Task[None]) -> bool:
    for _ in range(200):
        if task.done():
            return False
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            return True
        await asyncio.sleep(0.01)
    return False
