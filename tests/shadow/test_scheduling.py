"""When the shadow decides: after the response, at most ``pending_limit`` waiting, and with
the runtime lockdowns of the active server.

These drive :class:`AuthorizationService` and :class:`Shadow` directly, with real
bundles and the real engine, on the test's event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.policy.bundle import load_bundle
from authz.server import AuthorizationService
from authz.shadow import Shadow
from authz.store import SnapshotStore
from tests.engine.checks import check_request
from tests.lifecycle.incidents import incident
from tests.policy.bundles import SigningKey
from tests.server.serving import live_token
from tests.shadow import bundles

STAFF = {"sub": "alice", "tenant": "acme", "roles": ["vendor:staff"]}


def _service(active: Path, shadowed: Path, **options: Any) -> AuthorizationService:
    store = SnapshotStore(load_bundle(active))
    shadow = Shadow(SnapshotStore(load_bundle(shadowed), history_limit=1), store, **options)
    return AuthorizationService(store, shadow)


def _reason(response: bytes) -> str:
    message = external_auth_pb2.CheckResponse.FromString(response)
    reason: str = message.dynamic_metadata.fields["reason"].string_value
    return reason


def _shadow(service: AuthorizationService) -> Shadow:
    assert service.shadow is not None
    return service.shadow


async def test_the_shadow_decides_after_the_response_is_returned(
    active: Path, candidate: Path, key: SigningKey
) -> None:
    service = _service(active, candidate)
    shadow = _shadow(service)
    request = check_request(path=f"{bundles.ITEMS}/1", token=live_token(key, **STAFF))
    assert _reason(service.respond(request)) == "allowed"
    assert shadow.evaluated == 0  # only scheduled
    await asyncio.sleep(0)
    assert (shadow.evaluated, shadow.narrowed) == (1, 1)


async def test_evaluations_beyond_the_limit_are_dropped_and_counted(
    active: Path, candidate: Path, key: SigningKey
) -> None:
    service = _service(active, candidate, pending_limit=2)
    shadow = _shadow(service)
    request = check_request(path=f"{bundles.ITEMS}/1", token=live_token(key, **STAFF))
    for _ in range(5):
        assert _reason(service.respond(request)) == "allowed"
    assert shadow.dropped == 3
    await asyncio.sleep(0)
    assert (shadow.evaluated, shadow.dropped) == (2, 3)
    service.respond(request)  # room again
    await asyncio.sleep(0)
    assert (shadow.evaluated, shadow.dropped) == (3, 3)


async def test_runtime_lockdowns_apply_to_the_shadow_too(active: Path, tmp_path: Path) -> None:
    service = _service(active, bundles.copy(active, tmp_path / "same"))
    shadow = _shadow(service)
    request = check_request(path=f"{bundles.ITEMS}/1")
    service.store.lock(incident(), "oncall")
    assert _reason(service.respond(request)) == "lockdown"
    await asyncio.sleep(0)
    service.store.release("incident", "oncall")
    assert _reason(service.respond(request)) == "missing_token"
    await asyncio.sleep(0)
    assert (shadow.evaluated, shadow.differences) == (2, 0)
