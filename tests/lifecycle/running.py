"""The real server in-process (``run_server`` on 127.0.0.1:0), with its store and reloader."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from authz.config import ServerConfig
from authz.reload import Reloader
from authz.server import Runtime, run_server
from authz.store import SnapshotStore
from tests.engine.checks import check_request

PROBE = check_request(path="/healthz")


@dataclass(frozen=True)
class Decided:
    """What a Check came back with: gRPC status code, reason and policy version."""

    code: int
    reason: str
    version: str


@dataclass(frozen=True)
class Live:
    """A running server: what it is made of, and a client channel to it."""

    runtime: Runtime
    channel: Any  # grpc.aio.Channel
    stub: Any  # AuthorizationStub

    @property
    def store(self) -> SnapshotStore:
        return self.runtime.store

    @property
    def reloader(self) -> Reloader:
        return self.runtime.reloader

    async def decide(self, request: Any = PROBE) -> Decided:
        """One Check call."""
        response = await self.stub.Check(request, timeout=5)
        fields = response.dynamic_metadata.fields
        return Decided(
            response.status.code,
            fields["reason"].string_value,
            fields["policy_version"].string_value,
        )

    async def until_version(self, expected: str, timeout: float = 10) -> float:
        """Check until decisions carry ``expected``; the seconds it took."""
        started = time.monotonic()
        seen = ""
        while time.monotonic() - started < timeout:
            seen = (await self.decide()).version
            if seen == expected:
                return time.monotonic() - started
            await asyncio.sleep(0.01)
        raise AssertionError(f"decisions still carry {seen}, not {expected}, after {timeout}s")

    async def until_reloads(self, count: int, timeout: float = 10) -> None:
        """Wait until the reloader has finished ``count`` reloads, good or bad."""
        await until(lambda: self.reloader.successes + self.reloader.failures >= count, timeout)


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {condition}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(bundle: Path, **settings: Any) -> AsyncIterator[Live]:
    """``run_server`` as a background task (debounce 50 ms), stopped by SIGTERM as in production."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[Runtime] = loop.create_future()

    async def on_start(runtime: Runtime) -> None:
        started.set_result(runtime)

    options: dict[str, Any] = {"reload_debounce_seconds": 0.05, **settings}
    config = ServerConfig(policies=bundle, listen="127.0.0.1:0", grace_seconds=0.5, **options)
    task = asyncio.create_task(run_server(config, started=on_start))
    waiters: set[asyncio.Future[Any]] = {task, started}
    done, _ = await asyncio.wait(waiters, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if started not in done:
        task.cancel()
        raise RuntimeError(f"the server did not start: {task.exception() if done else 'timeout'}")
    runtime = started.result()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}")
    try:
        yield Live(runtime, channel, external_auth_pb2_grpc.AuthorizationStub(channel))
    finally:
        await channel.close()
        os.kill(os.getpid(), signal.SIGTERM)  # the handler is installed before `started`
        await asyncio.wait_for(task, timeout=10)
