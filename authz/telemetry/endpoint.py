"""``GET /metrics``: the handler the admin API mounts, and the optional listener of its own.

The admin API serves ``/metrics`` behind its authentication, like every admin
call. A scraper that cannot hold the admin token should not get it either: the
token also rolls policy back and lifts lockdowns. ``--metrics-listen`` gives such
a scraper a listener that answers ``GET /metrics`` and nothing else, without
authentication: the metrics hold no token, claim or header, only reason codes,
versions, issuers, rules and (when asked for) a bounded set of tenant names.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from authz.config import ConfigError
from authz.telemetry.exposition import CONTENT_TYPE
from authz.telemetry.metrics import Metrics

__all__ = [
    "Exposition",
    "MetricsListener",
    "current",
    "exposition_response",
    "metrics_response",
    "start_metrics_listener",
]

#: What a scrape is answered with: this process's metrics, or (``--workers``) every worker's.
Exposition = Callable[[], Awaitable[str]]
_log = logging.getLogger("authz.telemetry")


def metrics_response(metrics: Metrics) -> web.Response:
    """The current exposition as an HTTP answer."""
    return exposition_response(metrics.exposition())


def exposition_response(text: str) -> web.Response:
    """An exposition in the text format as an HTTP answer."""
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def current(metrics: Metrics) -> Exposition:
    """``metrics``' exposition at each scrape, as an :data:`Exposition`."""

    async def exposition() -> str:
        return metrics.exposition()

    return exposition


class MetricsListener:
    """A running ``--metrics-listen``: its bound port and how to stop it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def stop(self) -> None:
        await self._runner.cleanup()


async def start_metrics_listener(exposition: Exposition, listen: str) -> MetricsListener:
    """Serve ``GET /metrics`` on ``listen`` (HOST:PORT), answered with ``exposition``;
    ConfigError if it cannot bind."""

    async def handle(request: web.Request) -> web.Response:
        return exposition_response(await exposition())

    app = web.Application()
    app.add_routes([web.get("/metrics", handle, allow_head=False)])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    try:
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"metrics-listen: cannot listen on {listen}: {exc.strerror}") from None
    bound = int(runner.addresses[0][1])
    _log.info("metrics on http://%s:%d/metrics (no authentication)", host, bound)
    return MetricsListener(runner, bound)
