"""What Envoy gets back: a Decision shaped into a CheckResponse (spec §6)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from authz._proto.envoy.config.core.v3 import base_pb2
from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.decision import Decision, Reason

__all__ = ["HEADER_PREFIX", "check_response"]

HEADER_PREFIX = "x-authz-"

_OK, _INVALID_ARGUMENT, _PERMISSION_DENIED, _UNAUTHENTICATED = 0, 3, 7, 16
_GRPC_CODE = {400: _INVALID_ARGUMENT, 401: _UNAUTHENTICATED}
_HTTP_REASON = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_CHALLENGE = {
    Reason.INVALID_TOKEN: 'Bearer error="invalid_token"',
    Reason.REVOKED: 'Bearer error="invalid_token"',
    Reason.MISSING_TOKEN: 'Bearer realm="authz"',
}


def check_response(
    decision: Decision,
    decision_id: str,
    policy_version: str,
    request_headers: Mapping[str, str],
) -> external_auth_pb2.CheckResponse:
    """The CheckResponse for ``decision``; nothing about rules or claims reaches clients."""
    response = external_auth_pb2.CheckResponse()
    metadata = {
        "decision_id": decision_id,
        "policy_version": policy_version,
        "reason": decision.reason.value,
        "tenant": decision.tenant,
    }
    if decision.rule is not None:
        metadata["rule"] = decision.rule
    response.dynamic_metadata.update(metadata)
    if decision.allowed:
        _allow(response, decision, decision_id, policy_version, request_headers)
    else:
        _deny(response, decision, decision_id)
    return response


def _allow(
    response: external_auth_pb2.CheckResponse,
    decision: Decision,
    decision_id: str,
    policy_version: str,
    request_headers: Mapping[str, str],
) -> None:
    response.status.code = _OK
    ok = response.ok_response
    ours = {
        "x-authz-decision-id": decision_id,
        "x-authz-policy-version": policy_version,
    }
    if decision.tenant:
        ours["x-authz-tenant"] = decision.tenant
    if decision.subject:
        ours["x-authz-subject"] = decision.subject
    for key, value in ours.items():
        # Overwrite, never append: a client-sent x-authz-tenant must not survive
        # next to ours, or an upstream reading the first value could be fooled.
        ok.headers.add(header=base_pb2.HeaderValue(key=key, value=value), append_action=_OVERWRITE)
    spoofed = sorted(
        name for name in request_headers if name.startswith(HEADER_PREFIX) and name not in ours
    )
    ok.headers_to_remove.extend(spoofed)


def _deny(response: external_auth_pb2.CheckResponse, decision: Decision, decision_id: str) -> None:
    status = decision.status
    response.status.code = _GRPC_CODE.get(status, _PERMISSION_DENIED)
    response.status.message = decision.reason.value
    denied = response.denied_response
    denied.status.code = status  # type: ignore[assignment]
    headers = {"content-type": "application/json", "x-authz-decision-id": decision_id}
    challenge = _CHALLENGE.get(decision.reason)
    if challenge is not None and status == 401:
        headers["www-authenticate"] = challenge
    for key, value in headers.items():
        denied.headers.add(
            header=base_pb2.HeaderValue(key=key, value=value), append_action=_OVERWRITE
        )
    denied.body = json.dumps(
        {
            "error": _HTTP_REASON.get(status, "Forbidden"),
            "reason": decision.reason.value,
            "decision_id": decision_id,
        },
        separators=(",", ":"),
    )
