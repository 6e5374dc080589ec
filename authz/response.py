"""What Envoy gets back: a Decision shaped into a CheckResponse (spec §6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authz._proto.envoy.config.core.v3 import base_pb2
from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.decision import Decision, Reason

__all__ = ["HEADER_PREFIX", "ResponseTemplates", "check_response"]

HEADER_PREFIX = "x-authz-"

_OK, _INVALID_ARGUMENT, _PERMISSION_DENIED, _UNAUTHENTICATED = 0, 3, 7, 16
_GRPC_CODE = {400: _INVALID_ARGUMENT, 401: _UNAUTHENTICATED}
_HTTP_REASON = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_BODY = '{{"error":"{}","reason":"{}","decision_id":"{}"}}'
_ID_PLACEHOLDER = "\x00" * 26  # as long as a decision id (a ULID)
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
) -> bytes:
    """The serialised CheckResponse for ``decision``; nothing about rules or claims
    reaches clients (the rule id goes to Envoy's dynamic metadata only)."""
    # Fields are set in place (not through constructors or Struct.update):
    # this runs once per Check and that way costs about half.
    response = external_auth_pb2.CheckResponse()
    metadata = response.dynamic_metadata.fields
    metadata["decision_id"].string_value = decision_id
    metadata["policy_version"].string_value = policy_version
    metadata["reason"].string_value = decision.reason.value
    metadata["tenant"].string_value = decision.tenant
    if decision.rule is not None:
        metadata["rule"].string_value = decision.rule
    if decision.allowed:
        _allow(response, decision, decision_id, policy_version, request_headers)
    else:
        _deny(response, decision, decision_id)
    encoded: bytes = response.SerializeToString()
    return encoded


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
    # Overwrite, never append: a client-sent x-authz-tenant must not survive
    # next to ours, or an upstream reading the first value could be fooled.
    _set_headers(ok.headers, ours)
    spoofed = [name for name in request_headers if name.startswith(HEADER_PREFIX)]
    if spoofed:
        ok.headers_to_remove.extend(sorted(name for name in spoofed if name not in ours))


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
    _set_headers(denied.headers, headers)
    # Every value comes from a fixed vocabulary (no quotes, no backslashes), so
    # formatting is safe and cheaper than json.dumps; tests parse it as JSON.
    denied.body = _BODY.format(
        _HTTP_REASON.get(status, "Forbidden"), decision.reason.value, decision_id
    )


def _set_headers(options: Any, headers: dict[str, str]) -> None:
    for key, value in headers.items():
        option = options.add()
        option.header.key = key
        option.header.value = value
        option.append_action = _OVERWRITE


class ResponseTemplates:
    """Encoded responses by shape, with the decision id spliced in per request.

    Requests of one shape — same outcome, rule, tenant, subject, policy version
    and spoofed header names — get responses that differ only in the decision
    id, which has a fixed length (26 characters). So each shape is encoded
    once, with a placeholder where the id goes, and later responses are the
    template's pieces joined by the id: a few hundred nanoseconds instead of
    building and serialising protobuf objects on every request.
    """

    def __init__(self, limit: int = 8192) -> None:
        self._limit = limit
        self._templates: dict[tuple[Any, ...], tuple[bytes, ...]] = {}

    def encode(
        self,
        decision: Decision,
        decision_id: str,
        policy_version: str,
        request_headers: Mapping[str, str],
    ) -> bytes:
        """The same bytes as :func:`check_response`, from a template when possible."""
        allowed = decision.allowed
        spoofed: tuple[str, ...] = ()
        if allowed:
            spoofed = tuple(sorted(n for n in request_headers if n.startswith(HEADER_PREFIX)))
        key = (
            decision.reason,
            decision.rule,
            decision.tenant,
            decision.subject,
            decision.http_status,
            policy_version,
            spoofed,
        )
        parts = self._templates.get(key)
        if parts is None:
            template = check_response(
                decision, _ID_PLACEHOLDER, policy_version, dict.fromkeys(spoofed, "")
            )
            parts = tuple(template.split(_ID_PLACEHOLDER.encode()))
            # The id appears in a header and the metadata, and in a denial's body.
            if len(parts) != (3 if allowed else 4) or len(decision_id) != len(_ID_PLACEHOLDER):
                # The placeholder also occurs in a claim or header name (or the id
                # is not a ULID): encode this one directly, and keep no template.
                return check_response(decision, decision_id, policy_version, request_headers)
            if len(self._templates) >= self._limit:
                # Subjects and header names come from clients: the memo stays bounded.
                self._templates.clear()
            self._templates[key] = parts
        return decision_id.encode().join(parts)
