"""SIGHUP reloads a real `authz serve` process; without --no-watch it reloads by itself."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import grpc

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from tests.lifecycle import revisions
from tests.lifecycle.process import Served
from tests.lifecycle.running import PROBE


def _version(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = external_auth_pb2_grpc.AuthorizationStub(channel).Check(PROBE, timeout=5)
    assert response.status.code == 0
    version: str = response.dynamic_metadata.fields["policy_version"].string_value
    return version


def test_sighup_reloads(bundle: Path, tmp_path: Path) -> None:
    first = revisions.version_of(bundle)
    flags = ("--no-watch", "--reload-debounce", "0", "--state-dir", str(tmp_path / "s"))
    with Served(bundle, *flags) as served:
        assert f"watch=off state_dir={tmp_path / 's'}" in served.banner
        second = revisions.write_by_rename(bundle, revisions.text(1))
        time.sleep(0.3)
        assert _version(served.port) == first  # not watched
        served.process.send_signal(signal.SIGHUP)
        served.wait_for(re.compile(rf"reloaded .* \(SIGHUP\): version {second} in \d+ ms"))
        assert _version(served.port) == second

        revisions.replace(bundle, revisions.BROKEN)
        served.process.send_signal(signal.SIGHUP)
        still = rf"\(SIGHUP\) failed \(1 bundle error\(s\)\): still serving version {second}"
        served.wait_for(re.compile(still))
        served.wait_for(re.compile(re.escape(revisions.BROKEN_ERROR)))
        assert _version(served.port) == second
        assert served.stop() == 0


def test_a_watching_process_reloads_on_its_own(bundle: Path) -> None:
    with Served(bundle) as served:
        second = revisions.write_by_rename(bundle, revisions.text(1))
        served.wait_for(re.compile(rf"reloaded .* \(changed on disk\): version {second} in"))
        assert _version(served.port) == second
        assert served.stop() == 0
