"""The telemetry of a running server: which observers Check feeds, and what exports them.

Metrics are counted when something can read them (the admin API or
``--metrics-listen``); traces only with an OTLP endpoint. Whatever is off costs
the request path nothing: its observer is not installed.
"""

from __future__ import annotations

import asyncio
import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from authz.config import TelemetrySettings
from authz.decision_cache import DecisionCache
from authz.identity.remote import KeyFetcher
from authz.observe import Observer
from authz.reload import Reloader
from authz.shadow import Shadow
from authz.store import SnapshotStore
from authz.telemetry.checks import CheckCounts
from authz.telemetry.endpoint import MetricsListener, current, start_metrics_listener
from authz.telemetry.metrics import DropCounts, Metrics
from authz.telemetry.tracing import CheckTracer, tracer_provider

__all__ = ["Telemetry", "start_telemetry"]

_EXPORT_TIMEOUT_S = 5.0
_log = logging.getLogger("authz.telemetry")


class Telemetry:
    """The observers to hand to the Check service, the metrics (None: not counted),
    the ``--metrics-listen`` listener and the span pipeline (None: off)."""

    def __init__(
        self,
        metrics: Metrics | None,
        listener: MetricsListener | None,
        tracing: TracerProvider | None,
    ) -> None:
        self.metrics, self.listener, self.tracing = metrics, listener, tracing
        observers: list[Observer] = []
        if metrics is not None:
            observers.append(metrics.counts)
        if tracing is not None:
            observers.append(CheckTracer(tracing))
        self.observers = tuple(observers)

    async def flush(self) -> bool:
        """Export the spans ended so far (off the event loop); whether that succeeded."""
        if self.tracing is None:
            return True
        return await asyncio.to_thread(self.tracing.force_flush)

    async def close(self) -> None:
        """Stop the listener, send the last spans."""
        if self.listener is not None:
            await self.listener.stop()
        if self.metrics is not None:
            self.metrics.shutdown()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)


async def start_telemetry(
    settings: TelemetrySettings,
    store: SnapshotStore,
    reloader: Reloader,
    *,
    keys: KeyFetcher | None,
    shadow: Shadow | None,
    admin: bool,
    decision_log: DropCounts | None = None,
    decision_cache: DecisionCache | None = None,
) -> Telemetry:
    """What ``settings`` turn on; ``admin``: the admin API runs (and serves /metrics)."""
    metrics = listener = None
    if admin or settings.metrics_listen is not None:
        counts = CheckCounts(settings.metrics_tenant_label)
        metrics = Metrics(
            counts,
            store,
            reloader,
            keys=keys,
            shadow=shadow,
            decision_log=decision_log,
            decision_cache=decision_cache,
        )
        if settings.metrics_listen is not None:
            listener = await start_metrics_listener(current(metrics), settings.metrics_listen)
    tracing = None
    if settings.otlp_endpoint is not None:
        tracing = _otlp(settings.otlp_endpoint, settings.trace_sample_ratio)
        _log.info(
            "traces: a span per Check to %s over OTLP/gRPC, sample ratio %g",
            settings.otlp_endpoint,
            settings.trace_sample_ratio,
        )
    return Telemetry(metrics, listener, tracing)


def _otlp(endpoint: str, sample_ratio: float) -> TracerProvider:
    # The exporter (and its protobuf modules) only loads when traces are on.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=endpoint, insecure=endpoint.startswith("http://"), timeout=_EXPORT_TIMEOUT_S
    )
    return tracer_provider(BatchSpanProcessor(exporter), sample_ratio)
