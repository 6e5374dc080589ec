"""The decision log written by the real server: fields, secrets kept out, rotation, SIGTERM."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from authz.audit import AuditConfig
from authz.audit.decisionlog import trace_id
from tests.audit.conftest import read_lines
from tests.engine.checks import check_request
from tests.lifecycle.process import Served
from tests.policy.bundles import ISSUER, SigningKey
from tests.server.serving import live_token, serving
from tests.shadow import bundles as shadow_bundles

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
WORKLOAD = "spiffe://cluster.local/ns/shop/sa/web"
FIELDS = {
    "type", "time", "allowed", "status", "reason", "rule", "tenant", "policy_version",
    "decision_id", "would_match", "audit", "latency_us", "method", "host", "path",
    "source_principal", "subject", "issuer", "trace_id", "headers",
}  # fmt: skip


def _id(response: Any) -> str:
    metadata = json_format.MessageToDict(response.dynamic_metadata)
    return str(metadata["decision_id"])


@pytest.mark.asyncio
async def test_every_field_of_every_record(tmp_path: Path, bundle: Path, key: SigningKey) -> None:
    log = tmp_path / "decisions.log"
    token = live_token(key, sub="alice", tenant="acme", roles=["vendor:staff"])
    audit = AuditConfig(decision_log=str(log), log_headers=("x-client", "cookie-ish"))
    async with serving(bundle, audit=audit) as server:
        allowed = await server.stub.Check(
            check_request(
                path="/api/v1/vendors/acme/items/1?card=4111111111111111",
                token=token,
                principal=WORKLOAD,
                headers={
                    "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
                    "x-client": "mobile",
                    "cookie": "session=s3cr3t-cookie",
                },
            )
        )
        no_match = await server.stub.Check(
            check_request(path="/nothing", headers={"x-request-id": "req-42"})
        )
        invalid = await server.stub.Check(check_request(path="/me", token=token + "x"))
    # Leaving `serving` sent SIGTERM and waited for run_server: the log is drained.
    text = log.read_text()
    records = {record["decision_id"]: record for record in read_lines(log)}
    assert token not in text and "s3cr3t-cookie" not in text and "Bearer" not in text
    assert "4111111111111111" not in text and "card=" not in text

    first = records[_id(allowed)]
    assert set(first) == FIELDS
    assert TIME.fullmatch(first["time"])
    assert first["latency_us"] > 0
    assert first | {"time": None, "latency_us": None, "would_match": None} == {
        "type": "decision",
        "time": None,
        "allowed": True,
        "status": 200,
        "reason": "allowed",
        "rule": first["rule"],
        "tenant": "acme",
        "policy_version": server.policy_version,
        "decision_id": _id(allowed),
        "would_match": None,
        "audit": [],
        "latency_us": None,
        "method": "GET",
        "host": "api.shop.test",
        "path": "/api/v1/vendors/acme/items/1",
        "source_principal": "cluster.local/ns/shop/sa/web",  # Istio form
        "subject": "alice",
        "issuer": ISSUER,
        "trace_id": TRACE,
        "headers": {"x-client": "mobile"},
    }
    assert first["rule"] and "/" in first["rule"]

    second = records[_id(no_match)]
    assert (second["allowed"], second["status"], second["reason"]) == (False, 403, "no_match")
    assert (second["rule"], second["subject"], second["issuer"]) == (None, "", "")
    assert (second["trace_id"], second["headers"], second["path"]) == ("req-42", {}, "/nothing")

    third = records[_id(invalid)]
    assert (third["reason"], third["status"], third["subject"]) == ("invalid_token", 401, "")
    assert len(records) == 3


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, TRACE, id="w3c"),
        pytest.param({"x-b3-traceid": "80f198ee56343ba8"}, "80f198ee56343ba8", id="b3"),
        pytest.param({"x-request-id": "abc", "x-b3-traceid": "b3"}, "b3", id="b3-first"),
        pytest.param({"traceparent": "garbage", "x-request-id": "r"}, "r", id="bad-w3c"),
        pytest.param({}, "", id="none"),
    ],
)
def test_trace_id(headers: dict[str, str], expected: str) -> None:
    assert trace_id(headers) == expected


@pytest.mark.asyncio
async def test_the_file_rotates_by_size(tmp_path: Path, bundle: Path) -> None:
    log = tmp_path / "decisions.log"
    audit = AuditConfig(decision_log=str(log), max_bytes=2048, backups=2)
    sent = []
    async with serving(bundle, audit=audit) as server:
        for number in range(40):
            sent.append(_id(await server.stub.Check(check_request(path=f"/nothing/{number}"))))
    files = [log, log.with_name("decisions.log.1"), log.with_name("decisions.log.2")]
    assert all(path.exists() for path in files)
    assert not log.with_name("decisions.log.3").exists()
    assert all(path.stat().st_size <= 2048 for path in files)
    kept = [record["decision_id"] for path in reversed(files) for record in read_lines(path)]
    # The newest records survive, in order, and only the oldest were rotated away.
    assert kept == sent[-len(kept) :]
    assert 10 < len(kept) < 40


def test_sigterm_writes_every_queued_record(tmp_path: Path, bundle: Path) -> None:
    log = tmp_path / "decisions.log"
    with Served(bundle, "--decision-log", str(log)) as served:
        with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            ids = [_id(stub.Check(check_request(path=f"/n/{n}"), timeout=30)) for n in range(200)]
        assert served.stop() == 0
    assert [record["decision_id"] for record in read_lines(log)] == ids
    assert oct(log.stat().st_mode & 0o777) == "0o600"


@pytest.mark.asyncio
async def test_a_shadow_difference_is_logged_beside_its_decision(
    tmp_path: Path, key: SigningKey
) -> None:
    active = shadow_bundles.active(tmp_path / "active", key)
    candidate = shadow_bundles.candidate(tmp_path / "candidate", key)
    log = tmp_path / "decisions.log"
    staff = live_token(key, sub="alice", tenant="acme", roles=["vendor:staff"])
    audit = AuditConfig(decision_log=str(log))
    async with serving(active, audit=audit, shadow_policies=candidate) as server:
        answer = await server.stub.Check(
            check_request(path=f"{shadow_bundles.ITEMS}/1", token=staff)
        )
    decision_id = _id(answer)

    records = [r for r in read_lines(log) if r.get("decision_id") == decision_id]
    assert [r["type"] for r in records] == ["decision", "shadow_difference"]
    decision, difference = records
    assert decision["allowed"] is True
    assert difference["kind"] == "narrowed"
    assert difference["active"]["allowed"] is True and difference["shadow"]["allowed"] is False
