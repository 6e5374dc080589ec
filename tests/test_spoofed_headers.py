"""Client-sent ``x-authz-*`` headers are removed however Envoy sends the header names.

The response only scans the request's header names when parsing found ``x-authz-``
among them; these cases pin that every form of the names still gets there.
"""

from __future__ import annotations

from typing import Any

import pytest

from authz._proto.envoy.config.core.v3 import base_pb2
from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.policy.bundle import Snapshot
from authz.server import AuthorizationService
from authz.store import SnapshotStore
from tests.engine.checks import check_request
from tests.policy.bundles import compile_bundle, policy

OPEN = {"open.yaml": policy("open", "[{name: all}]")}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> AuthorizationService:
    snapshot: Snapshot = compile_bundle(tmp_path_factory.mktemp("open"), OPEN)
    return AuthorizationService(SnapshotStore(snapshot))


def _removed(service: AuthorizationService, message: Any) -> list[str]:
    raw = service.respond(message)
    response = external_auth_pb2.CheckResponse.FromString(raw)
    assert response.status.code == 0
    return list(response.ok_response.headers_to_remove)


@pytest.mark.parametrize(
    ("headers", "removed"),
    [
        ({"accept": "*/*"}, []),
        ({"x-authz-foo": "1"}, ["x-authz-foo"]),
        ({"X-Authz-Foo": "1", "Accept": "*/*"}, ["x-authz-foo"]),
        ({"x-authz": "1", "authz-x": "1"}, []),
        ({"ax-": "1", "authz-y": "1"}, []),  # x-authz- only across two names: nothing to remove
    ],
)
def test_headers_map(
    service: AuthorizationService, headers: dict[str, str], removed: list[str]
) -> None:
    assert _removed(service, check_request(path="/", headers=headers)) == removed


def test_header_map_form(service: AuthorizationService) -> None:
    message = check_request(path="/")
    http = message.attributes.request.http
    http.headers.clear()
    for name, value in ((":path", b"/"), ("X-Authz-Bar", b"1"), ("accept", b"*/*")):
        http.header_map.headers.append(base_pb2.HeaderValue(key=name, raw_value=value))
    assert _removed(service, message) == ["x-authz-bar"]
