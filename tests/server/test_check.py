"""Envoy's Authorization/Check over a real gRPC channel (spec §6)."""

from __future__ import annotations

import json
import re
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from authz._proto.envoy.config.core.v3 import base_pb2
from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.server import CHECK_METHOD
from tests.engine.checks import check_request
from tests.policy.bundles import SigningKey
from tests.server.serving import Server, live_token

pytestmark = pytest.mark.asyncio(loop_scope="module")

OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
PAY = "pay.payments.svc.cluster.local"


def _headers(options: Any) -> dict[str, str]:
    return {option.header.key: option.header.value for option in options}


def _metadata(response: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = json_format.MessageToDict(response.dynamic_metadata)
    return metadata


async def test_allowed_response_headers(server: Server, key: SigningKey) -> None:
    token = live_token(key, sub="alice", tenant="acme", roles=["vendor:staff"])
    response = await server.stub.Check(
        check_request(
            path="/api/v1/vendors/acme/items/1",
            token=token,
            headers={"x-authz-foo": "evil", "x-authz-tenant": "globex", "x-other": "kept"},
        )
    )
    assert response.status.code == 0
    assert response.WhichOneof("http_response") == "ok_response"
    ok = response.ok_response
    headers = _headers(ok.headers)
    assert set(headers) == {
        "x-authz-decision-id",
        "x-authz-policy-version",
        "x-authz-tenant",
        "x-authz-subject",
    }
    assert ULID.fullmatch(headers["x-authz-decision-id"])
    assert headers["x-authz-policy-version"] == server.policy_version
    assert headers["x-authz-tenant"] == "acme"
    assert headers["x-authz-subject"] == "alice"
    for option in ok.headers:
        assert option.append_action == OVERWRITE, option.header.key
        assert not option.HasField("append"), option.header.key
    # The client's x-authz-tenant is overwritten (not removed); other x-authz-* are removed.
    assert list(ok.headers_to_remove) == ["x-authz-foo"]
    assert _metadata(response) == {
        "decision_id": headers["x-authz-decision-id"],
        "policy_version": server.policy_version,
        "reason": "allowed",
        "rule": "acme/staff-items",
        "tenant": "acme",
    }


async def test_allowed_without_tenant_or_subject(server: Server) -> None:
    response = await server.stub.Check(
        check_request(
            path="/healthz",
            headers={
                "x-authz-tenant": "acme",
                "x-authz-subject": "root",
                "X-Authz-Decision-Id": "1",
            },
        )
    )
    ok = response.ok_response
    assert set(_headers(ok.headers)) == {"x-authz-decision-id", "x-authz-policy-version"}
    assert sorted(ok.headers_to_remove) == ["x-authz-subject", "x-authz-tenant"]
    assert _metadata(response)["tenant"] == ""


DENIALS = [
    pytest.param({"path": "/nothing"}, None, 7, 403, "no_match", None, id="no_match"),
    pytest.param(
        {"path": "/api/v1/vendors/globex/items/1"},
        {"tenant": "acme", "roles": ["vendor:staff"]},
        7,
        403,
        "cross_tenant",
        None,
        id="cross_tenant",
    ),
    pytest.param(
        {"method": "DELETE", "path": "/api/v1/payments/p1", "host": PAY},
        {"roles": ["platform:admin"]},
        7,
        403,
        "denied",
        None,
        id="denied",
    ),
    pytest.param(
        {"path": "/me"}, None, 16, 401, "missing_token", 'Bearer realm="authz"', id="missing_token"
    ),
    pytest.param(
        {"path": "/me"},
        {"aud": "someone-else"},
        16,
        401,
        "invalid_token",
        'Bearer error="invalid_token"',
        id="invalid_token",
    ),
    pytest.param({"path": "/a/%2F/b"}, None, 3, 400, "bad_path", None, id="bad_path"),
]
HTTP_REASON = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}


@pytest.mark.parametrize(
    ("request_", "claims", "grpc_code", "http_status", "reason", "challenge"), DENIALS
)
async def test_denied_response(
    server: Server,
    key: SigningKey,
    request_: dict[str, Any],
    claims: dict[str, Any] | None,
    grpc_code: int,
    http_status: int,
    reason: str,
    challenge: str | None,
) -> None:
    token = live_token(key, **claims) if claims is not None else None
    response = await server.stub.Check(check_request(token=token, **request_))
    assert response.status.code == grpc_code
    assert response.WhichOneof("http_response") == "denied_response"
    denied = response.denied_response
    assert denied.status.code == http_status
    headers = _headers(denied.headers)
    expected = {
        "content-type": "application/json",
        "x-authz-decision-id": headers.get("x-authz-decision-id", ""),
    }
    if challenge is not None:
        expected["www-authenticate"] = challenge
    assert headers == expected
    assert ULID.fullmatch(headers["x-authz-decision-id"])
    body = json.loads(denied.body)
    assert body == {
        "error": HTTP_REASON[http_status],
        "reason": reason,
        "decision_id": headers["x-authz-decision-id"],
    }
    assert list(json.loads(denied.body)) == ["error", "reason", "decision_id"]
    metadata = _metadata(response)
    assert metadata["decision_id"] == headers["x-authz-decision-id"]
    assert metadata["reason"] == reason
    assert metadata["policy_version"] == server.policy_version


async def test_denial_leaks_no_rule_names(server: Server, key: SigningKey) -> None:
    token = live_token(key, roles=["platform:admin"], secret_claim="s3cr3t")
    response = await server.stub.Check(
        check_request(method="DELETE", path="/api/v1/payments/p1", host=PAY, token=token)
    )
    denied = response.denied_response
    visible = denied.body + " ".join(f"{h.header.key}:{h.header.value}" for h in denied.headers)
    for secret in ("guardrails", "never-delete-payments", "s3cr3t", "platform:admin", token):
        assert secret not in visible
    # ... but Envoy's access log gets the rule.
    assert _metadata(response)["rule"] == "guardrails/never-delete-payments"
    assert _metadata(response)["tenant"] == ""


async def test_metadata_has_no_rule_without_one(server: Server) -> None:
    response = await server.stub.Check(check_request(path="/nothing"))
    assert set(_metadata(response)) == {"decision_id", "policy_version", "reason", "tenant"}


async def test_check_without_request_http(server: Server) -> None:
    """A network-level check: only `from` parts can match."""
    allowed = await server.stub.Check(
        check_request(tcp=True, principal="spiffe://cluster.local/ns/db-clients/sa/app")
    )
    assert allowed.status.code == 0
    assert _metadata(allowed)["rule"] == "mesh/db-clients"
    denied = await server.stub.Check(
        check_request(tcp=True, principal="spiffe://cluster.local/ns/cache/sa/redis")
    )
    assert (denied.status.code, denied.denied_response.status.code) == (7, 403)


async def test_empty_check_request(server: Server) -> None:
    response = await server.stub.Check(external_auth_pb2.CheckRequest())
    assert (response.status.code, _metadata(response)["reason"]) == (7, "no_match")


async def test_malformed_protobuf_is_invalid_argument(server: Server) -> None:
    raw = server.channel.unary_unary(CHECK_METHOD)  # no serializers: bytes as they are
    bad_utf8 = check_request(path="/XYZ").SerializeToString().replace(b"/XYZ", b"/\xff\xfeZ")
    for payload in (b"\x0a\x05ab", b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", bad_utf8):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(payload)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # ... and the server keeps serving.
    response = await server.stub.Check(check_request(path="/healthz"))
    assert response.status.code == 0


async def test_one_megabyte_header(server: Server) -> None:
    big = "x" * (1 << 20)
    response = await server.stub.Check(check_request(path="/healthz", headers={"x-filler": big}))
    assert response.status.code == 0
    response = await server.stub.Check(
        check_request(path="/healthz", headers={"authorization": f"Bearer {big}"})
    )
    assert (response.status.code, _metadata(response)["reason"]) == (16, "invalid_token")


HOSTILE_PATHS = [
    pytest.param("/api/v1/payments/..%2f..%2fadmin", id="encoded-slash"),
    pytest.param("/admin%5Cusers", id="encoded-backslash"),
    pytest.param("/admin\\users", id="backslash"),
    pytest.param("/healthz%00.json", id="encoded-nul"),
    pytest.param("/healthz\x00", id="nul"),
    pytest.param("/healthz\r\nx-injected: 1", id="crlf"),
    pytest.param("/healthz/../../etc/passwd", id="escapes-root"),
    pytest.param("/%2e%2e/healthz", id="encoded-dot-dot"),
    pytest.param("/healthz%zz", id="bad-percent"),
    pytest.param("healthz", id="relative"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_hostile_paths_are_bad_requests(server: Server, path: str) -> None:
    response = await server.stub.Check(check_request(path=path))
    assert response.status.code == 3
    assert response.denied_response.status.code == 400
    assert json.loads(response.denied_response.body)["reason"] == "bad_path"


GARBAGE_TOKENS = [
    pytest.param("", "missing_token", id="empty"),
    pytest.param("Bearer", "missing_token", id="bearer-alone"),
    pytest.param("Bearer ", "missing_token", id="bearer-space"),
    pytest.param("Bearer a.b.c", "invalid_token", id="three-dots"),
    pytest.param("Bearer " + "A" * 100_000, "invalid_token", id="100KB"),
    pytest.param(
        "Bearer " + "eyJ" + "x" * 40 + "." + "y" * 40 + "." + "z" * 40,
        "invalid_token",
        id="jwt-shaped",
    ),
    pytest.param("Bearer ëyJhbGciOi.ümlaut.☃", "invalid_token", id="non-ascii"),
    pytest.param("Bearer \x00\x01\x02", "invalid_token", id="control-characters"),
    pytest.param("Bearer ..", "invalid_token", id="empty-segments"),
    pytest.param("Bearer e30.e30.", "invalid_token", id="no-signature"),
]


@pytest.mark.parametrize(("authorization", "reason"), GARBAGE_TOKENS)
async def test_garbage_tokens_never_allowed(
    server: Server, authorization: str, reason: str
) -> None:
    response = await server.stub.Check(
        check_request(path="/me", headers={"authorization": authorization})
    )
    assert response.status.code == 16
    assert response.WhichOneof("http_response") == "denied_response"
    assert _metadata(response)["reason"] == reason


async def test_internal_error_never_allows(server: Server) -> None:
    """A request.time no datetime can hold, read by a `when`: denied, whatever fails."""
    message = check_request(path="/timed")
    message.attributes.request.time.seconds = 10**12
    response = await server.stub.Check(message)
    assert (response.status.code, response.denied_response.status.code) == (7, 403)
    assert _metadata(response)["reason"] in ("internal_error", "no_match")
    fine = await server.stub.Check(check_request(path="/timed", time="2026-06-01T12:00:00Z"))
    assert fine.status.code == 0


async def test_unencodable_claim_is_an_internal_error(server: Server, key: SigningKey) -> None:
    """A `sub` holding a lone surrogate cannot go into a header: denied, not a gRPC error."""
    token = live_token(key, sub="\ud800", tenant="acme", roles=["vendor:staff"])
    response = await server.stub.Check(
        check_request(path="/api/v1/vendors/acme/items/1", token=token)
    )
    assert (response.status.code, response.denied_response.status.code) == (7, 403)
    assert _metadata(response)["reason"] == "internal_error"
