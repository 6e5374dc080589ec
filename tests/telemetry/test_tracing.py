"""A span per Check, joined to the caller's trace, received by a real OTLP collector."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from authz.config import TelemetrySettings
from authz.telemetry.tracing import SPAN_NAME, parent_context
from tests.engine.checks import check_request
from tests.policy.bundles import SigningKey
from tests.server.serving import live_token, serving
from tests.telemetry.otlp import attributes, receiving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


async def traced(bundle: Path, key: SigningKey, headers: dict[str, str]) -> list[Span]:
    """The spans a collector receives for one allowed Check sent with ``headers``."""
    async with receiving() as receiver:
        telemetry = TelemetrySettings(otlp_endpoint=receiver.endpoint)
        async with serving(bundle, telemetry=telemetry) as server:
            token = live_token(key, sub="alice", tenant="acme", roles=["vendor:staff"])
            path = "/api/v1/vendors/acme/items/1"
            await server.stub.Check(check_request(path=path, token=token, headers=headers))
            assert server.runtime.telemetry is not None
            assert await server.runtime.telemetry.flush()
            version = server.policy_version
        assert receiver.resources == [{"service.name": "authz"}] * len(receiver.resources)
        for span in receiver.spans:
            assert attributes(span)["authz.policy_version"] == version
            assert token not in str(span)  # nothing of the request but the decision's words
        return receiver.spans


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "tracestate": "mesh=1"},
        {"b3": f"{TRACE_ID}-{SPAN_ID}-1"},
        {"x-b3-traceid": TRACE_ID, "x-b3-spanid": SPAN_ID, "x-b3-sampled": "1"},
    ],
    ids=["w3c", "b3-single", "b3-multi"],
)
async def test_the_span_joins_the_callers_trace(
    bundle: Path, key: SigningKey, headers: dict[str, str]
) -> None:
    (span,) = await traced(bundle, key, headers)

    assert span.name == SPAN_NAME
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == SPAN_ID
    assert span.end_time_unix_nano > span.start_time_unix_nano
    found = attributes(span)
    assert {k: found[k] for k in ("authz.decision", "authz.reason", "authz.tenant")} == {
        "authz.decision": "allow",
        "authz.reason": "allowed",
        "authz.tenant": "acme",
    }
    assert found["authz.rule"] and found["http.response.status_code"] == 200
    assert len(found["authz.decision_id"]) == 26


async def test_a_check_without_a_parent_starts_a_trace(bundle: Path, key: SigningKey) -> None:
    (span,) = await traced(bundle, key, {})
    assert span.parent_span_id == b"" and len(span.trace_id) == 16


@pytest.mark.parametrize(
    "parent",
    [
        {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00"},
        {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-02"},  # flags other than "sampled"
        {"b3": f"{TRACE_ID}-{SPAN_ID}-0"},
        {"b3": "0"},
        {"x-b3-traceid": TRACE_ID, "x-b3-spanid": SPAN_ID, "x-b3-sampled": "0"},
    ],
)
async def test_a_caller_that_did_not_sample_gets_no_span(
    bundle: Path, key: SigningKey, parent: dict[str, str]
) -> None:
    assert await traced(bundle, key, parent) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "garbage"},
        {"b3": "1"},  # a sampling decision, no ids
        {"b3": f"{TRACE_ID}-0000000000000000-1"},
        {"x-b3-traceid": "+" + TRACE_ID[1:], "x-b3-spanid": SPAN_ID},
        {"x-b3-traceid": TRACE_ID, "x-b3-spanid": "0x" + SPAN_ID[2:]},
    ],
)
def test_headers_that_name_no_parent(headers: dict[str, str]) -> None:
    assert parent_context(headers) is None


def test_a_64_bit_b3_trace_id_is_widened() -> None:
    context = parent_context({"x-b3-traceid": TRACE_ID[16:], "x-b3-spanid": SPAN_ID})
    assert context is not None
    parent = trace.get_current_span(context).get_span_context()
    assert parent.trace_id == int(TRACE_ID[16:], 16) and parent.is_remote and parent.trace_flags
