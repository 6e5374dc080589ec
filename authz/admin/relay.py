"""The admin API of `authz serve --workers N`: one endpoint that reaches every worker.

Each worker runs its own admin API on a private loopback port, behind a token made
for this run only. The parent serves the public admin port with the same
authentication as a single server, and relays every call to all workers at once
through the fleet fan-out of ``authz admin --fleet``; the answer is the fleet report
(each worker's answer and active version, and whether versions differ).

The status code is 200 when every worker said yes; the workers' own code when they
all refused alike (e.g. 404 for an unknown version); 502 otherwise (some workers
did it, some did not, or some did not answer).

``GET /metrics`` is answered with every worker's metrics merged into one exposition
(:mod:`authz.telemetry.fleet`), as ``--metrics-listen`` is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from authz.admin.api import AdminGate, AdminServer, listen
from authz.admin.config import AdminConfig, read_token
from authz.admin.forms import json_body
from authz.admin_cli import Call, Replica, Result, call_all, fleet_report
from authz.telemetry.endpoint import Exposition, exposition_response

__all__ = ["start_relay"]

_TIMEOUT_SECONDS = 30.0  # a rollback may rebuild a version from disk on every worker


class _Relay(AdminGate):
    """Handlers that pass each call on to every worker."""

    def __init__(
        self,
        token: bytes | None,
        mtls: bool,
        workers: Callable[[], Sequence[Replica]],
        worker_token: str,
        metrics: Exposition,
    ) -> None:
        super().__init__(token, mtls)
        self.workers = workers
        self.worker_token = worker_token
        self.exposition = metrics

    async def relay(self, request: web.Request) -> web.Response:
        """Any admin call: to every worker, the fleet report back."""
        # Read (and size-limited) here, so a bad body is refused once, not once per worker.
        body = await json_body(request) if request.method == "POST" else None
        call = Call(request.method, request.rel_url.raw_path, body)
        results = await call_all(self.workers(), call, self.worker_token, None, _TIMEOUT_SECONDS)
        return web.json_response(fleet_report(results), status=_status(results), dumps=_dumps)

    async def metrics(self, request: web.Request) -> web.Response:
        """GET /metrics: every worker's metrics, merged."""
        return exposition_response(await self.exposition())


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2)


def _status(results: Sequence[Result]) -> int:
    if results and all(result.ok for result in results):
        return 200
    statuses = {result.status for result in results}
    if len(statuses) == 1 and None not in statuses:
        (status,) = statuses
        assert status is not None
        return status
    return 502


async def start_relay(
    config: AdminConfig,
    workers: Callable[[], Sequence[Replica]],
    worker_token: str,
    metrics: Exposition,
) -> AdminServer:
    """Serve the relay where ``config`` says; ConfigError if its files or address are unusable.

    ``workers`` gives the workers' admin APIs at the time of each call (a restarted
    worker may listen elsewhere); ``metrics``, the workers' merged metrics.
    """
    token = read_token(config.token_file) if config.token_file is not None else None
    relay = _Relay(token, config.client_ca is not None, workers, worker_token, metrics)
    routes = [
        web.get("/metrics", relay.metrics, allow_head=False),
        web.get("/v1/status", relay.relay, allow_head=False),
        web.post("/v1/reload", relay.relay),
        web.post("/v1/rollback", relay.relay),
        web.post("/v1/unpin", relay.relay),
        web.post("/v1/lockdown", relay.relay),
        web.delete("/v1/lockdown/{name}", relay.relay),
    ]
    return await listen(relay, config, routes)
