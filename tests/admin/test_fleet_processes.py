"""`authz admin --fleet` against three real `authz serve` processes on loopback.

Every replica is `python -m authz serve` with its own copy of the example bundle
(all three trusting one generated key, so they start on the same version), its
own admin port and the same token file. Each fleet command is `python -m authz
admin --fleet …` in a subprocess, over real HTTP; lockdowns are verified with
real gRPC Checks. The servers are started once for the module; every test leaves
the fleet as it found it (same version everywhere, unpinned, no run-time
lockdown, three replicas up), so the tests do not depend on their order.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from authz.policy.bundle import load_bundle
from tests.engine.checks import check_request
from tests.lifecycle.process import Served
from tests.policy.bundles import SigningKey

REPO = Path(__file__).resolve().parents[2]
ADMIN_ON = re.compile(r"admin API on 127\.0\.0\.1:(\d+)")
TOKEN = "fleet-admin-token-0123456789abcdef"
HOST = "api.shop.example.com"
CATALOG = check_request(path="/api/v1/catalog", host=HOST)  # allowed to anybody
PROBE = check_request(path="/healthz", host=HOST)  # allowed to anybody
EDITED = Path("platform") / "storefront.yaml"  # the file a test edits to make a new version
PERMISSION_DENIED = 7  # google.rpc.Code


@dataclass
class Replica:
    """One `authz serve` process: its bundle copy, gRPC port and admin port."""

    bundle: Path
    served: Served
    admin_port: int

    @property
    def label(self) -> str:
        """How `authz admin --fleet` names it: its admin HOST:PORT."""
        return f"127.0.0.1:{self.admin_port}"

    def status(self) -> dict[str, Any]:
        """``GET /v1/status`` straight from this replica's admin API."""
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            connection.request("GET", "/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
            response = connection.getresponse()
            body: dict[str, Any] = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == 200, body
        return body

    def until_active(self, version: str, timeout: float = 10) -> None:
        """Poll the admin API until ``version`` is the one deciding."""
        deadline = time.monotonic() + timeout
        active = None
        while time.monotonic() < deadline:
            active = self.status()["active_version"]
            if active == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.label} still serves {active}, not {version}:\n{self.log()}")

    def log(self) -> str:
        """Everything the process has logged so far."""
        while not self.served.lines.empty():
            self.served.seen.append(self.served.lines.get_nowait())
        return "".join(self.served.seen)

    def check(self, request: Any) -> tuple[int, int, str]:
        """One gRPC Check: gRPC status code, HTTP status of a deny (0 if allowed), reason."""
        with grpc.insecure_channel(f"127.0.0.1:{self.served.port}") as channel:
            response = external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=5)
        denied = response.denied_response.status.code if response.HasField("denied_response") else 0
        reason: str = response.dynamic_metadata.fields["reason"].string_value
        return response.status.code, int(denied), reason


@dataclass
class Fleet:
    """Three replicas and the token file their admin APIs share."""

    token_file: Path
    replicas: list[Replica] = field(default_factory=list)
    first_version: str = ""

    @property
    def target(self) -> str:
        return ",".join(replica.label for replica in self.replicas)

    def admin(self, *argv: str) -> tuple[int, dict[str, Any]]:
        """`authz admin --fleet … ARGV`: the exit status and the printed report."""
        fleet = ("--fleet", self.target, "--token-file", str(self.token_file), "--timeout", "5")
        result = subprocess.run(
            [sys.executable, "-m", "authz", "admin", *fleet, *argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.stdout, result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        return result.returncode, report

    def restart(self, index: int) -> None:
        """Replace replica ``index`` (stopped or not) by a fresh process on its bundle."""
        old = self.replicas[index]
        old.served.__exit__(None, None, None)
        self.replicas[index] = start_replica(old.bundle, self.token_file)


def start_replica(bundle: Path, token_file: Path) -> Replica:
    """`authz serve` on 127.0.0.1:0 with the admin API on 127.0.0.1:0."""
    flags = ("--admin-listen", "127.0.0.1:0", "--admin-token-file", str(token_file))
    served = Served(bundle, *flags)
    try:
        return Replica(bundle, served, _admin_port(served))
    except BaseException:
        served.__exit__(None, None, None)
        raise


def _admin_port(served: Served) -> int:
    for line in served.seen:
        if match := ADMIN_ON.search(line):
            return int(match.group(1))
    return int(served.wait_for(ADMIN_ON, timeout=5).group(1))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    token_file = root / "admin-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    key = SigningKey.generate(root)
    bundles = []
    for name in ("a", "b", "c"):
        copy = root / name
        shutil.copytree(REPO / "policies", copy)
        shutil.copyfile(key.jwks_path, copy / "keys" / "demo-jwks.json")
        bundles.append(copy)
    started = Fleet(token_file)
    with ThreadPoolExecutor(len(bundles)) as pool:
        futures = [pool.submit(start_replica, bundle, token_file) for bundle in bundles]
        try:
            started.replicas = [future.result() for future in futures]
        except BaseException:
            for future in futures:
                if future.exception() is None:
                    future.result().served.__exit__(None, None, None)
            raise
    try:
        versions = {replica.status()["active_version"] for replica in started.replicas}
        assert len(versions) == 1, versions
        started.first_version = versions.pop()
        yield started
    finally:
        for replica in started.replicas:
            replica.served.__exit__(None, None, None)


def _write(replica: Replica, data: bytes) -> None:
    """Replace the edited policy file of ``replica``'s bundle in one step (as a deploy
    would), so that the directory watch never sees it half written."""
    target = replica.bundle / EDITED
    staged = replica.bundle.parent / f"{replica.bundle.name}-staged.yaml"
    staged.write_bytes(data)
    os.replace(staged, target)


def _edit(replica: Replica, original: bytes) -> str:
    """Append a comment to a policy file of ``replica``'s bundle; the bundle's new version."""
    _write(replica, original + b"# edited by test_fleet_processes\n")
    return load_bundle(replica.bundle).version


def _assert_all_ok(fleet: Fleet, code: int, report: dict[str, Any]) -> list[dict[str, Any]]:
    assert code == 0, report
    assert report["ok"] is True
    answers: list[dict[str, Any]] = report["replicas"]
    assert [answer["replica"] for answer in answers] == [r.label for r in fleet.replicas]
    for answer in answers:
        assert answer["ok"] is True, answer
        assert answer["status"] == 200, answer
        assert answer["active_version"] == answer["result"]["active_version"]
    return answers


def test_status_reports_every_replica_then_the_skew(fleet: Fleet) -> None:
    code, report = fleet.admin("status")
    answers = _assert_all_ok(fleet, code, report)
    assert report["versions"] == [fleet.first_version]
    assert report["skew"] is False
    assert set(report) == {"ok", "versions", "skew", "replicas"}
    for answer in answers:
        assert set(answer) == {"replica", "ok", "status", "active_version", "result"}
        assert answer["active_version"] == fleet.first_version
        assert answer["result"]["pinned"] is None

    changed = fleet.replicas[2]
    original = (changed.bundle / EDITED).read_bytes()
    try:
        second = _edit(changed, original)
        assert second != fleet.first_version
        changed.until_active(second)
        code, report = fleet.admin("status")
        answers = _assert_all_ok(fleet, code, report)
        assert report["skew"] is True
        assert report["versions"] == sorted([fleet.first_version, second])
        actives = [answer["active_version"] for answer in answers]
        assert actives == [fleet.first_version, fleet.first_version, second]
    finally:
        _write(changed, original)
    changed.until_active(fleet.first_version)  # same bytes, same version
    code, report = fleet.admin("status")
    _assert_all_ok(fleet, code, report)
    assert report["skew"] is False


def test_lockdown_and_release_across_the_fleet(fleet: Fleet) -> None:
    for replica in fleet.replicas:
        assert replica.check(CATALOG) == (0, 0, "allowed")
    try:
        code, report = fleet.admin(
            "lockdown", "--name", "inc-1", "--reason", "test", "--exempt-path", "/healthz"
        )
        for answer in _assert_all_ok(fleet, code, report):
            lockdown = answer["result"]["lockdown"]
            assert lockdown["name"] == "inc-1"
            assert lockdown["reason"] == "test"
            assert lockdown["tenant"] is None
            assert lockdown["exemptPaths"] == ["/healthz"]
        code, report = fleet.admin("status")
        for answer in _assert_all_ok(fleet, code, report):
            runtime = answer["result"]["lockdowns"]["runtime"]
            assert [lockdown["name"] for lockdown in runtime] == ["inc-1"]
        for replica in fleet.replicas:
            assert replica.check(CATALOG) == (PERMISSION_DENIED, 403, "lockdown"), replica.label
            assert replica.check(PROBE) == (0, 0, "allowed"), replica.label
    finally:
        code, report = fleet.admin("release", "inc-1")
    for answer in _assert_all_ok(fleet, code, report):
        assert answer["result"]["released"] == "inc-1"
    for replica in fleet.replicas:
        assert replica.check(CATALOG) == (0, 0, "allowed"), replica.label
        assert replica.status()["lockdowns"]["runtime"] == []


def test_rollback_pins_every_replica_and_unpin_follows_the_bundle_again(fleet: Fleet) -> None:
    first = fleet.first_version
    edited = fleet.replicas[1:]  # two replicas move on to a newer bundle
    original = (edited[0].bundle / EDITED).read_bytes()  # the same in every copy
    pinned = False
    try:
        newer = [_edit(replica, original) for replica in edited]
        assert newer[0] == newer[1] != first  # the same edit of the same bundle
        for replica in edited:
            replica.until_active(newer[0])

        code, report = fleet.admin("rollback", first)
        pinned = True
        for answer in _assert_all_ok(fleet, code, report):
            assert answer["active_version"] == first
            assert answer["result"]["pinned"] == first
        assert report["versions"] == [first]
        assert report["skew"] is False
        for replica in fleet.replicas:
            status = replica.status()
            assert (status["active_version"], status["pinned"]) == (first, first)

        code, report = fleet.admin("unpin")
        pinned = False
        answers = _assert_all_ok(fleet, code, report)
        assert [answer["result"]["pinned"] for answer in answers] == [None, None, None]
        actives = [answer["active_version"] for answer in answers]
        assert actives == [first, newer[0], newer[0]]
        assert report["skew"] is True
    finally:
        if pinned:
            fleet.admin("unpin")
        for replica in edited:
            _write(replica, original)
    for replica in edited:
        replica.until_active(first)


def test_a_stopped_replica_fails_the_command_the_others_apply_it(fleet: Fleet) -> None:
    stopped = fleet.replicas[0]
    stopped.served.stop()
    try:
        code, report = fleet.admin("lockdown", "--name", "inc-2", "--reason", "test")
        assert code == 1, report
        assert report["ok"] is False
        down, *up = report["replicas"]
        assert down["replica"] == stopped.label
        assert down["ok"] is False
        assert down["status"] is None
        assert down["active_version"] is None
        assert down["result"]["error"] == "unreachable"
        for answer, replica in zip(up, fleet.replicas[1:], strict=True):
            assert answer["replica"] == replica.label
            assert answer["ok"] is True, answer
            assert answer["result"]["lockdown"]["name"] == "inc-2"
            assert replica.check(CATALOG) == (PERMISSION_DENIED, 403, "lockdown")
        assert report["versions"] == [fleet.first_version]
    finally:
        code, report = fleet.admin("release", "inc-2")
        fleet.restart(0)
    assert code == 1, report
    assert [answer["ok"] for answer in report["replicas"]] == [False, True, True]
    for replica in fleet.replicas:
        assert replica.check(CATALOG) == (0, 0, "allowed"), replica.label
    code, report = fleet.admin("status")
    for answer in _assert_all_ok(fleet, code, report):
        assert answer["result"]["lockdowns"]["runtime"] == []
    assert report["versions"] == [fleet.first_version]
