"""CheckRequests as Envoy sends them (proto3 JSON), and their request attributes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.request import RequestAttributes, from_check_request

DEFAULT_HOST = "api.shop.test"


def check_request(
    *,
    method: str = "GET",
    path: str = "/",
    host: str = DEFAULT_HOST,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    principal: str | None = None,
    tcp: bool = False,
    source: tuple[str, int] = ("10.0.0.7", 41234),
    destination: tuple[str, int] = ("10.0.0.9", 8080),
    destination_principal: str | None = None,
    context: Mapping[str, str] | None = None,
    time: str | None = None,
    **http: str,
) -> Any:
    """A CheckRequest; ``tcp=True`` leaves out ``request.http`` (a network-level check).

    Extra keyword arguments are further ``http`` fields (``scheme``, ``protocol``, ``id``).
    """
    all_headers = {":method": method, ":path": path, ":authority": host, **(headers or {})}
    if token is not None:
        all_headers["authorization"] = f"Bearer {token}"
    source_peer: dict[str, Any] = {
        "address": {"socketAddress": {"address": source[0], "portValue": source[1]}}
    }
    if principal is not None:
        source_peer["principal"] = principal
    destination_peer: dict[str, Any] = {
        "address": {"socketAddress": {"address": destination[0], "portValue": destination[1]}}
    }
    if destination_principal is not None:
        destination_peer["principal"] = destination_principal
    request: dict[str, Any] = {}
    if time is not None:
        request["time"] = time
    if not tcp:
        request["http"] = {
            "method": method,
            "path": path,
            "host": host,
            "headers": all_headers,
            **http,
        }
    body = {
        "attributes": {
            "source": source_peer,
            "destination": destination_peer,
            "request": request,
            "contextExtensions": dict(context or {}),
        }
    }
    return json_format.ParseDict(body, external_auth_pb2.CheckRequest())


def attributes(**fields: Any) -> RequestAttributes:
    """The request attributes of :func:`check_request` (same arguments)."""
    return from_check_request(check_request(**fields))
