"""Telemetry: metrics for Prometheus and a trace span per Check, off the request path.

Both are :class:`~authz.observe.Observer` s of answered Checks. ``checks``
counts on the request path with plain ints; ``metrics`` defines every metric
once, as OpenTelemetry instruments read at scrape time; ``exposition`` renders
them in the Prometheus text format; ``endpoint`` serves ``/metrics``;
``tracing`` turns each Check into a span joined to the caller's trace;
``running`` assembles what the settings turn on for a running server.
"""

from __future__ import annotations

from authz.telemetry.checks import CheckCounts
from authz.telemetry.metrics import DropCounts, Metrics
from authz.telemetry.running import Telemetry, start_telemetry

__all__ = ["CheckCounts", "DropCounts", "Metrics", "Telemetry", "start_telemetry"]
