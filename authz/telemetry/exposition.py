"""OpenTelemetry metric data as the Prometheus text exposition format (version 0.0.4).

Instrument names are already Prometheus names (``authz_…``); a monotonic sum
becomes a counter with the ``_total`` suffix, a gauge or non-monotonic sum a
gauge, a histogram the ``_bucket``/``_sum``/``_count`` series. Written here
rather than through prometheus_client: a few lines, one dependency fewer, and
exactly the names the alert rules and the dashboard use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import Gauge, Histogram, Metric, Sum

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(metrics: Iterable[Metric]) -> str:
    """The exposition of ``metrics``; a metric without data points still gets its HELP and TYPE."""
    lines: list[str] = []
    for metric in metrics:
        data = metric.data
        if isinstance(data, Histogram):
            _header(lines, metric.name, "histogram", metric.description)
            for point in data.data_points:
                _histogram(lines, metric.name, point.attributes or {}, point)
        elif isinstance(data, Sum | Gauge):
            counter = isinstance(data, Sum) and data.is_monotonic
            name = f"{metric.name}_total" if counter else metric.name
            _header(lines, name, "counter" if counter else "gauge", metric.description)
            for number in data.data_points:
                lines.append(f"{name}{_labels(number.attributes or {})} {_value(number.value)}")
    lines.append("")
    return "\n".join(lines)


def _header(lines: list[str], name: str, kind: str, description: str | None) -> None:
    if description:
        help_text = description.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _histogram(lines: list[str], name: str, labels: Mapping[str, Any], point: Any) -> None:
    cumulative = 0
    bounds = [*point.explicit_bounds, math.inf]
    for bound, count in zip(bounds, point.bucket_counts, strict=True):
        cumulative += count
        le = {**labels, "le": _value(bound)}
        lines.append(f"{name}_bucket{_labels(le)} {cumulative}")
    lines.append(f"{name}_sum{_labels(labels)} {_value(point.sum)}")
    lines.append(f"{name}_count{_labels(labels)} {point.count}")


def _labels(labels: Mapping[str, Any]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(number: float) -> str:
    if isinstance(number, int):
        return str(number)
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if math.isnan(number):
        return "NaN"
    return repr(number)
