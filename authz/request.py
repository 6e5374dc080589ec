"""Request attributes: what a decision knows about a request, read once from the CheckRequest.

This is the edge's translation step: protobuf in, plain frozen values out,
with the path normalised and the host canonicalised before any rule runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authz.identity.peers import Peer, parse_principal
from authz.paths import normalise_path
from authz.policy.matchers import strip_port

__all__ = ["HttpRequest", "RequestAttributes", "from_check_request"]

_NO_PEER = Peer("", "", "")


@dataclass(frozen=True, slots=True)
class HttpRequest:
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
    headers: Mapping[str, str]
    time: datetime | None


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """Everything the engine reads about one request."""

    http: HttpRequest | None
    source: Peer = _NO_PEER
    source_address: str = ""
    source_port: int = 0
    destination: Peer = _NO_PEER
    destination_address: str = ""
    destination_port: int = 0
    certificate: str = ""
    context: Mapping[str, str] = field(default_factory=dict)


def from_check_request(message: Any) -> RequestAttributes:
    """Translate an ``envoy.service.auth.v3.CheckRequest``."""
    attributes = message.attributes
    source, destination = attributes.source, attributes.destination
    source_socket = source.address.socket_address
    destination_socket = destination.address.socket_address
    http = None
    if attributes.request.HasField("http"):
        http = _http(attributes.request)
    return RequestAttributes(
        http=http,
        source=parse_principal(source.principal) if source.principal else _NO_PEER,
        source_address=source_socket.address,
        source_port=source_socket.port_value,
        destination=parse_principal(destination.principal) if destination.principal else _NO_PEER,
        destination_address=destination_socket.address,
        destination_port=destination_socket.port_value,
        certificate=source.certificate,
        context=dict(attributes.context_extensions),
    )


def _http(request: Any) -> HttpRequest:
    http = request.http
    headers = {key.lower(): value for key, value in http.headers.items()}
    if not headers and http.HasField("header_map"):
        headers = _from_header_map(http.header_map)
    raw_path = http.path or headers.get(":path", "")
    normalised = normalise_path(raw_path)
    when = None
    if request.HasField("time"):
        when = datetime.fromtimestamp(request.time.seconds, UTC).replace(
            microsecond=request.time.nanos // 1000
        )
    return HttpRequest(
        method=(http.method or headers.get(":method", "")).upper(),
        path=normalised.path,
        raw_path=raw_path,
        query=normalised.query,
        path_problem=normalised.problem,
        host=strip_port(http.host or headers.get(":authority", "")),
        scheme=http.scheme,
        protocol=http.protocol,
        id=http.id,
        headers=headers,
        time=when,
    )


def _from_header_map(header_map: Any) -> dict[str, str]:
    """Envoy's ``header_map`` form: repeated headers are joined with ',' like ``headers``."""
    joined: dict[str, str] = {}
    for header in header_map.headers:
        value = header.value or header.raw_value.decode("utf-8", "replace")
        key = header.key.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined
