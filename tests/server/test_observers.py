"""Observers see every answered Check, and can never change an answer."""

from __future__ import annotations

from pathlib import Path

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.observe import Checked
from authz.policy.bundle import load_bundle
from authz.server import AuthorizationService
from authz.store import SnapshotStore
from tests.engine.checks import check_request
from tests.policy.bundles import SigningKey
from tests.server.serving import live_token


class Recorder:
    def __init__(self) -> None:
        self.events: list[Checked] = []

    def checked(self, event: Checked) -> None:
        self.events.append(event)


class Broken:
    def checked(self, event: Checked) -> None:
        raise RuntimeError("recording failed")


def _metadata(response: bytes) -> dict[str, str]:
    message = external_auth_pb2.CheckResponse.FromString(response)
    return {name: value.string_value for name, value in message.dynamic_metadata.fields.items()}


def test_each_answer_reaches_every_observer(bundle: Path, key: SigningKey) -> None:
    first, second = Recorder(), Recorder()
    store = SnapshotStore(load_bundle(bundle))
    service = AuthorizationService(store, observers=[first, second])
    staff = live_token(key, sub="alice", tenant="acme", roles=["vendor:staff"])

    allowed = _metadata(service.respond(check_request(path="/", token=staff)))
    denied = _metadata(service.respond(check_request(path="/", token="garbage")))

    assert first.events == second.events
    assert [(e.decision.reason.value, e.decision_id) for e in first.events] == [
        (allowed["reason"], allowed["decision_id"]),
        ("invalid_token", denied["decision_id"]),
    ]
    event = first.events[1]
    assert event.policy_version == store.active_version
    assert event.attributes is not None and event.attributes.http is not None
    assert event.attributes.http.path == "/"
    assert event.duration_ns > 0


def test_an_observer_that_raises_changes_nothing(bundle: Path, key: SigningKey) -> None:
    store = SnapshotStore(load_bundle(bundle))
    after = Recorder()
    service = AuthorizationService(store, observers=[Broken(), after])
    plain = AuthorizationService(store)
    request = check_request(path="/", token="garbage")

    observed, unobserved = _metadata(service.respond(request)), _metadata(plain.respond(request))

    assert observed["reason"] == unobserved["reason"] == "invalid_token"
    assert len(after.events) == 1  # the observers after a broken one still see it
