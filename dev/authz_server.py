"""The authz server as a child process: start ``python -m authz serve``, await health, stop.

Readiness is the standard ``grpc.health.v1.Health`` answer ``SERVING``, which the
server gives once its bundle is loaded. With mTLS the probe presents the server's own
certificate, as an exec readiness probe in its pod would. Stopping sends SIGTERM
(graceful) first.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dev import processes
from dev.mtls import Mtls
from dev.ports import LOOPBACK

__all__ = ["ONE_PROCESS", "AuthzServer", "AuthzServerError", "health_status"]

#: The flags of a server measured as one process: `authz serve` starts one worker per
#: usable CPU by default, which a benchmark of one process must not get by accident.
ONE_PROCESS = ("--workers", "1")


class AuthzServerError(RuntimeError):
    """The server exited early or did not report SERVING in time."""


def health_status(
    target: str, timeout_s: float = 1.0, credentials: grpc.ChannelCredentials | None = None
) -> str | None:
    """The overall health status name at ``target`` (``"SERVING"``…), or None if unreachable;
    over TLS with ``credentials``."""
    if credentials is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(target, credentials)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return None
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return name


@dataclass(slots=True)
class AuthzServer:
    """``python -m authz serve`` on 127.0.0.1:``port``; restartable (tests stop it).

    With ``tls``, gRPC is served over mTLS; ``tls.ca`` signs the clients' certificates
    and, as in a mesh, the server's own. Only the ``allow_clients`` SPIFFE IDs may call
    Check, if any are given.
    """

    policies: Path
    port: int
    stderr: IO[bytes] | int | None = None
    stdout: IO[bytes] | int | None = None  # where `--decision-log -` goes
    tls: Mtls | None = None
    allow_clients: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # further `authz serve` flags
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def target(self) -> str:
        """gRPC target ``host:port``."""
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> None:
        """Spawn the server (no waiting; see :meth:`wait_serving`)."""
        if self.running:
            raise AuthzServerError("authz server already running")
        argv = [sys.executable, "-m", "authz", "serve"]
        argv += ["--policies", str(self.policies), "--listen", self.target]
        if self.tls is not None:
            argv += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
            argv += ["--client-ca", str(self.tls.ca)]
        for client in self.allow_clients:
            argv += ["--allow-client", client]
        argv += self.options
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.stdout, stderr=self.stderr
        )

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self.process is not None and self.process.poll() is None

    def wait_serving(self, timeout_s: float = 30.0) -> None:
        """Block until health says SERVING; raise :class:`AuthzServerError` otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                code = None if self.process is None else self.process.returncode
                raise AuthzServerError(f"authz server exited with status {code}")
            if health_status(self.target, credentials=self.probe_credentials()) == "SERVING":
                return
            time.sleep(0.1)
        raise AuthzServerError(f"authz server at {self.target} not SERVING after {timeout_s:g}s")

    def probe_credentials(self) -> grpc.ChannelCredentials | None:
        """What a health probe needs to connect: the server's own certificate, if mTLS."""
        if self.tls is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.tls.ca.read_bytes(),
            private_key=self.tls.key.read_bytes(),
            certificate_chain=self.tls.cert.read_bytes(),
        )

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; return the exit status."""
        if self.process is None:
            return None
        return processes.stop(self.process, timeout_s)
