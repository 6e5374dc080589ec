"""One span per answered Check, joined to the caller's trace, exported over OTLP.

The span is made after the fact, from the :class:`~authz.observe.Checked`
event, with the Check's own start and end times: nothing is opened or closed
around the decision. Its parent is the request's W3C ``traceparent`` (with
``tracestate``) or, failing that, its B3 headers (``b3`` single header, or
``x-b3-traceid``/``x-b3-spanid``/``x-b3-sampled``), so the span sits inside the
mesh's trace. The parent's sampling decision is followed; a Check without a
parent is sampled at the configured ratio. Export is batched on the SDK's
worker thread. Without an OTLP endpoint none of this is built: no per-Check cost.

Attributes are the decision's public words only (decision, reason, rule, policy
version, tenant, decision id, status): never a header, a token, a claim or the path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from authz.decision import Reason
from authz.observe import Checked

__all__ = ["SPAN_NAME", "CheckTracer", "parent_context", "tracer_provider"]

SPAN_NAME = "authz.check"
_TRACE_ID = re.compile(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}")  # 64-bit ids are zero-extended
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_W3C = TraceContextTextMapPropagator()
_W3C_PARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-([0-9a-f]{2})")
_NO_HEADERS: Mapping[str, str] = {}
_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)
_NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)


def tracer_provider(processor: SpanProcessor, sample_ratio: float) -> TracerProvider:
    """A provider for the service's spans, sending each ended one to ``processor``."""
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        resource=Resource({"service.name": "authz"}),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(processor)
    return provider


class CheckTracer:
    """An :class:`~authz.observe.Observer` that records a span per Check."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("authz")

    def checked(self, event: Checked) -> None:
        attributes = event.attributes
        http = attributes.http if attributes is not None else None
        headers = http.headers if http is not None else _NO_HEADERS
        if _unsampled(headers):
            return  # the caller decided: no span (the sampler would drop it, at a cost)
        decision = event.decision
        start = int(event.now.timestamp() * 1e9)
        span = self._tracer.start_span(
            SPAN_NAME,
            context=parent_context(headers),
            kind=SpanKind.SERVER,
            start_time=start,
        )
        if span.is_recording():
            span.set_attributes(
                {
                    "authz.decision": "allow" if decision.allowed else "deny",
                    "authz.reason": decision.reason.value,
                    "authz.rule": decision.rule or "",
                    "authz.policy_version": event.policy_version,
                    "authz.tenant": decision.tenant,
                    "authz.decision_id": event.decision_id,
                    "http.response.status_code": decision.status,
                }
            )
            if decision.reason is Reason.INTERNAL_ERROR:
                span.set_status(Status(StatusCode.ERROR, "internal_error"))
        span.end(end_time=start + event.duration_ns)


def _unsampled(headers: Mapping[str, str]) -> bool:
    """True when a well-formed parent says "not sampled": a quick answer that skips
    building a span the parent-based sampler would only drop."""
    parent = headers.get("traceparent")
    if parent is not None:
        found = _W3C_PARENT.fullmatch(parent)
        return found is not None and not int(found.group(1), 16) & 1
    single = headers.get("b3")
    if single is not None:
        fields = single.strip().split("-")
        return fields == ["0"] or (len(fields) > 2 and fields[2] == "0")
    return headers.get("x-b3-sampled") in ("0", "false") and "x-b3-traceid" in headers


def parent_context(headers: Mapping[str, str]) -> Context | None:
    """The caller's span from W3C Trace Context, else from B3; None when there is neither."""
    if "traceparent" in headers:
        context = _W3C.extract(headers)
        if trace.get_current_span(context).get_span_context().is_valid:
            return context
    parent = _b3(headers)
    if parent is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _b3(headers: Mapping[str, str]) -> SpanContext | None:
    """B3 (Zipkin): ``b3: TRACEID-SPANID[-SAMPLED[-PARENT]]`` or the ``x-b3-*`` headers."""
    single = headers.get("b3")
    if single is not None:
        fields = single.strip().split("-")
        if len(fields) < 2:  # "0", "1", "d": a sampling decision without ids
            return None
        trace_id, span_id = fields[0], fields[1]
        sampled = fields[2] if len(fields) > 2 else None
    else:
        trace_id = headers.get("x-b3-traceid", "")
        span_id = headers.get("x-b3-spanid", "")
        sampled = "d" if headers.get("x-b3-flags") == "1" else headers.get("x-b3-sampled")
    if not (_TRACE_ID.fullmatch(trace_id) and _SPAN_ID.fullmatch(span_id)):
        return None
    trace_number, span_number = int(trace_id, 16), int(span_id, 16)
    if not trace_number or not span_number:
        return None
    # No decision ("defer" to the receiver): recorded, the span still joins the trace.
    flags = _NOT_SAMPLED if sampled in ("0", "false") else _SAMPLED
    return SpanContext(trace_number, span_number, is_remote=True, trace_flags=flags)
