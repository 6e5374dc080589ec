"""A webhook receiver on loopback (aiohttp): records what it is sent, fails when told to."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Receiver:
    """What was POSTed (JSON bodies and their Authorization headers); the first
    ``fail`` requests are answered 500."""

    url: str = ""
    fail: int = 0
    requests: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.requests <= self.fail:
            return web.Response(status=500)
        self.events.append(json.loads(await request.read()))
        self.authorizations.append(request.headers.get("authorization"))
        return web.Response(status=204)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


@contextlib.asynccontextmanager
async def receiving(fail: int = 0) -> AsyncIterator[Receiver]:
    """A receiver listening on 127.0.0.1 (an ephemeral port) until the block ends."""
    receiver = Receiver(fail=fail)
    app = web.Application()
    app.router.add_post("/events", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/events"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until true (AssertionError after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
