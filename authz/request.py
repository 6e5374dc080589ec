"""Request attributes: what a decision knows about a request, read once from the CheckRequest.

This is the edge's translation step: protobuf in, plain immutable values out,
with the path normalised and the host canonicalised before any rule runs.
The types are NamedTuples: immutable like the rest of the core, and cheap to
build once per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from authz.identity.peers import Peer, istio_form, parse_principal
from authz.paths import normalise_path
from authz.policy.matchers import strip_port
from authz.response import HEADER_PREFIX

__all__ = ["HttpRequest", "RequestAttributes", "from_check_request"]

_NO_PEER = Peer("", "", "")
_NO_CONTEXT: Mapping[str, str] = MappingProxyType({})


class HttpRequest(NamedTuple):
    """The HTTP part of a check. ``path`` is normalised; '' when refused."""

    method: str
    path: str
    raw_path: str
    query: str
    path_problem: str | None
    host: str
    scheme: str
    protocol: str
    id: str
    headers: Mapping[str, str]  # lower-case names
    time_ns: int | None  # when Envoy saw the request
    # Some header name contains x-authz- (the names we set): only then does the
    # response look for client-sent ones to remove. Found in the names already joined.
    names_ours: bool = True


class RequestAttributes(NamedTuple):
    """Everything the engine reads about one request."""

    http: HttpRequest | None
    source: Peer = _NO_PEER
    source_address: str = ""
    source_port: int = 0
    destination_principal: str = ""  # Istio form
    destination_address: str = ""
    destination_port: int = 0
    certificate: str = ""
    context: Mapping[str, str] = _NO_CONTEXT


def from_check_request(message: Any) -> RequestAttributes:
    """Translate an ``envoy.service.auth.v3.CheckRequest``."""
    attributes = message.attributes
    source, destination = attributes.source, attributes.destination
    source_socket = source.address.socket_address
    destination_socket = destination.address.socket_address
    request = attributes.request
    return RequestAttributes(
        _http(request) if request.HasField("http") else None,
        parse_principal(source.principal) if source.principal else _NO_PEER,
        source_socket.address,
        source_socket.port_value,
        istio_form(destination.principal),
        destination_socket.address,
        destination_socket.port_value,
        source.certificate,
        dict(attributes.context_extensions) if attributes.context_extensions else _NO_CONTEXT,
    )


def _http(request: Any) -> HttpRequest:
    http = request.http
    # Envoy reports names lower-case, so the protobuf map itself (a read-only
    # Mapping) usually serves as is: most requests look up two or three names.
    # Otherwise the names are lower-cased, so that `X-Tenant-Id` cannot slip
    # past a lookup of `x-tenant-id`.
    headers: Mapping[str, str] = http.headers
    names = "".join(headers)
    if names and not names.islower():
        headers = {key.lower(): value for key, value in headers.items()}
        names = names.lower()
    elif not names and http.HasField("header_map"):
        headers = _from_header_map(http.header_map)
        names = "".join(headers)
    raw_path = http.path or headers.get(":path", "")
    path, query, problem = normalise_path(raw_path)
    time_ns = None
    if request.HasField("time"):
        time_ns = request.time.seconds * 1_000_000_000 + request.time.nanos
    return HttpRequest(
        (http.method or headers.get(":method", "")).upper(),
        path,
        raw_path,
        query,
        problem,
        strip_port(http.host or headers.get(":authority", "")),
        http.scheme,
        http.protocol,
        http.id,
        headers,
        time_ns,
        HEADER_PREFIX in names,
    )


def _from_header_map(header_map: Any) -> dict[str, str]:
    """Envoy's ``header_map`` form: repeated headers are joined with ',' like ``headers``."""
    joined: dict[str, str] = {}
    for header in header_map.headers:
        value = header.value or header.raw_value.decode("utf-8", "replace")
        key = header.key.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined
