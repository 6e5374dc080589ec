"""The hand-encoded CheckResponse (authz/response.py), read back by two decoders.

Every decision shape is decoded with our generated classes and with
envoy-data-plane's (the reference for Envoy's API), and both must see the
fields that spec §6 asks for.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from authz._proto.envoy.config.core.v3 import base_pb2
from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.decision import Decision, Reason
from authz.response import ResponseTemplates, check_response

with warnings.catch_warnings():
    # envoy-data-plane's pydantic models warn on import; they are only the reference here.
    warnings.simplefilter("ignore", DeprecationWarning)
    from envoy_data_plane.envoy.service.auth import v3 as ref_auth

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DECISION_ID = "01M8FRY3A205K9TAS80B7APXH0"
VERSION = "sha256:" + "ab" * 32
LONG = "s" * 300  # length prefixes above 127 take two bytes
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD

ALLOWED = [
    pytest.param(Decision(Reason.ALLOWED, "p/r", "acme", "alice"), id="tenant-and-subject"),
    pytest.param(Decision(Reason.ALLOWED, "p/r"), id="no-tenant-no-subject"),
    pytest.param(Decision(Reason.ALLOWED, "p/r", "acme", LONG), id="long-subject"),
    pytest.param(Decision(Reason.ALLOWED, "p/r", "ünïcødé", "名前"), id="non-ascii"),
]
DENIED = [
    pytest.param(Decision(Reason.BAD_PATH), 400, 3, None, id="bad_path"),
    pytest.param(Decision(Reason.LOCKDOWN), 403, 7, None, id="lockdown"),
    pytest.param(
        Decision(Reason.INVALID_TOKEN), 401, 16, 'Bearer error="invalid_token"', id="invalid"
    ),
    pytest.param(Decision(Reason.REVOKED), 401, 16, 'Bearer error="invalid_token"', id="revoked"),
    pytest.param(Decision(Reason.REVOKED, http_status=403), 403, 7, None, id="revoked-workload"),
    pytest.param(Decision(Reason.CROSS_TENANT, tenant="globex"), 403, 7, None, id="cross"),
    pytest.param(Decision(Reason.DENIED, "p/deny"), 403, 7, None, id="denied"),
    pytest.param(Decision(Reason.MISSING_TOKEN), 401, 16, 'Bearer realm="authz"', id="missing"),
    pytest.param(Decision(Reason.NO_MATCH), 403, 7, None, id="no_match"),
    pytest.param(Decision(Reason.INTERNAL_ERROR), 403, 7, None, id="internal_error"),
]
SPOOFED = {"x-authz-tenant": "evil", "x-authz-foo": "bar", "x-authz-zzz": "", "accept": "*/*"}


def _decode(encoded: bytes) -> tuple[Any, Any]:
    ours = external_auth_pb2.CheckResponse.FromString(encoded)
    reference = ref_auth.CheckResponse.parse(encoded)
    assert ours.SerializeToString(deterministic=True) == type(ours).FromString(
        bytes(reference)
    ).SerializeToString(deterministic=True)
    return ours, reference


def _metadata(response: Any) -> dict[str, str]:
    return {key: value.string_value for key, value in response.dynamic_metadata.fields.items()}


@pytest.mark.parametrize("decision", ALLOWED)
def test_allowed(decision: Decision) -> None:
    ours, _ = _decode(check_response(decision, DECISION_ID, VERSION, SPOOFED))
    assert ours.status.code == 0
    assert ours.WhichOneof("http_response") == "ok_response"
    headers = {o.header.key: o.header.value for o in ours.ok_response.headers}
    expected = {"x-authz-decision-id": DECISION_ID, "x-authz-policy-version": VERSION}
    if decision.tenant:
        expected["x-authz-tenant"] = decision.tenant
    if decision.subject:
        expected["x-authz-subject"] = decision.subject
    assert headers == expected
    assert {o.append_action for o in ours.ok_response.headers} == {OVERWRITE}
    removed = {"x-authz-foo", "x-authz-zzz"} | (set() if decision.tenant else {"x-authz-tenant"})
    assert list(ours.ok_response.headers_to_remove) == sorted(removed)
    assert _metadata(ours) == {
        "decision_id": DECISION_ID,
        "policy_version": VERSION,
        "reason": "allowed",
        "tenant": decision.tenant,
        "rule": "p/r",
    }


@pytest.mark.parametrize(("decision", "status", "grpc_code", "challenge"), DENIED)
def test_denied(decision: Decision, status: int, grpc_code: int, challenge: str | None) -> None:
    ours, reference = _decode(check_response(decision, DECISION_ID, VERSION, SPOOFED))
    assert (ours.status.code, ours.status.message) == (grpc_code, decision.reason.value)
    denied = ours.denied_response
    assert denied.status.code == status
    assert int(reference.denied_response.status.code) == status
    headers = {o.header.key: o.header.value for o in denied.headers}
    expected = {"content-type": "application/json", "x-authz-decision-id": DECISION_ID}
    if challenge is not None:
        expected["www-authenticate"] = challenge
    assert headers == expected
    body = json.loads(denied.body)
    assert body == {
        "error": body["error"],
        "reason": decision.reason.value,
        "decision_id": DECISION_ID,
    }
    assert body["error"] == {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}[status]
    metadata = _metadata(ours)
    assert metadata["reason"] == decision.reason.value
    assert ("rule" in metadata) is (decision.rule is not None)


SHAPES = [*(p.values[0] for p in ALLOWED), *(p.values[0] for p in DENIED)]
IDS = ["01M8FRY3A205K9TAS80B7APXH0", "01M8FRZX8274W1WCCN9E3600F1", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"]


@pytest.mark.parametrize("decision", SHAPES)
def test_templates_give_the_same_bytes(decision: Decision) -> None:
    templates = ResponseTemplates()
    for decision_id in IDS:  # the first call builds the template, the others use it
        for headers in (SPOOFED, {}):
            expected = check_response(decision, decision_id, VERSION, headers)
            assert templates.encode(decision, decision_id, VERSION, headers) == expected


def test_placeholder_inside_a_claim_is_encoded_directly() -> None:
    decision = Decision(Reason.ALLOWED, "p/r", "acme", "\x00" * 26)
    templates = ResponseTemplates()
    for decision_id in IDS:
        expected = check_response(decision, decision_id, VERSION, {})
        assert templates.encode(decision, decision_id, VERSION, {}) == expected


def test_templates_stay_bounded() -> None:
    templates = ResponseTemplates(limit=4)
    for number in range(10):
        decision = Decision(Reason.ALLOWED, "p/r", "acme", f"user-{number}")
        encoded = templates.encode(decision, IDS[0], VERSION, {})
        assert encoded == check_response(decision, IDS[0], VERSION, {})
    assert len(templates._templates) <= 4
