"""`python -m authz serve` as a real process: refusing a broken bundle, draining on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from tests.engine.checks import check_request
from tests.lifecycle.process import LogLines

SERVING_ON = re.compile(r"serving on 127\.0\.0\.1:(\d+)")


def _serve(bundle: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "authz", "serve", "--policies", str(bundle), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def broken_bundle(tmp_path: Path) -> Path:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: p}\n"
        "spec:\n  rules:\n    - name: r\n      action: deny\n      to: [{methods: [get]}]\n"
    )
    return tmp_path


def test_serve_refuses_a_broken_bundle(broken_bundle: Path) -> None:
    with _serve(broken_bundle, "--listen", "127.0.0.1:0") as process:
        try:
            _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 2
    assert "p.yaml:7:15: spec.rules[0].action: must be ALLOW, DENY or AUDIT" in stderr
    assert "p.yaml:8:23: spec.rules[0].to[0].methods[0]: methods are upper case" in stderr
    assert "2 error(s)" in stderr
    assert "serving on" not in stderr


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_sigterm_drains_then_exits_0(bundle: Path, loop: str) -> None:
    with _serve(bundle, "--listen", "127.0.0.1:0", "--grace", "1", "--loop", loop) as process:
        try:
            assert process.stderr is not None
            lines = LogLines(process.stderr)
            lines.wait_for(re.compile(rf"event loop: {loop}$"))
            port = int(lines.wait_for(SERVING_ON).group(1))
            sent = _drain_while_watching(port, process)
            assert process.wait(timeout=15) == 0
            assert time.monotonic() - sent >= 0.5  # the open Watch held the drain
            lines.wait_for(re.compile(r"\bstopped\b"))
            lines.reader.join(timeout=5)
        finally:
            process.kill()


def _drain_while_watching(port: int, process: subprocess.Popen[str]) -> float:
    """Check once, open a health Watch, SIGTERM; the Watch sees NOT_SERVING, then ends."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        allowed = external_auth_pb2_grpc.AuthorizationStub(channel).Check(
            check_request(path="/healthz"), timeout=5
        )
        assert allowed.status.code == 0
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=15
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert process.poll() is None  # still draining
        with pytest.raises(grpc.RpcError):
            next(watch)
    return sent


def test_an_unknown_event_loop_is_refused(bundle: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "authz", "serve", "--policies", str(bundle)],
        env={**os.environ, "AUTHZ_LOOP": "trio"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "authz serve: loop: expected one of uvloop, asyncio, got 'trio'" in done.stderr
