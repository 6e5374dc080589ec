"""Cerbos, the alternative policy decision point, deciding the same rule over gRPC.

The binary comes from the npm registry (``@cerbos/cerbos-linux-x64``, a pinned
version) and is installed by the benchmark into a cache directory outside the
repository. Cerbos runs with a disk store holding one resource policy equivalent to
the example bundle's ``acme-vendor/staff-read-orders`` rule: it verifies the bearer
token itself (``auxData.jwt`` with the bundle's JWKS as a local key set) and allows
``read`` on a ``vendor_order`` when the token's roles include vendor staff or manager
and the token's tenant is the order's tenant. Telemetry is off.

Unlike Envoy's ext_authz request, a Cerbos request is already digested by the caller:
the caller maps host, method and path to a resource kind, an action and the order's
tenant. Cerbos therefore does less work per call than our server, which does that
mapping from the raw HTTP attributes.

The request is built from Cerbos's own message definitions, fetched from the running
server by gRPC reflection, so it always matches the version under test.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from dev import processes
from dev.authz_server import health_status
from dev.ports import LOOPBACK, free_port

__all__ = [
    "CHECK_METHOD",
    "PACKAGE",
    "POLICY",
    "VERSION",
    "CerbosError",
    "CerbosServer",
    "check_resources",
    "decide",
    "ensure_installed",
    "serve",
]

PACKAGE = "@cerbos/cerbos-linux-x64"
VERSION = "0.55.0"
CHECK_METHOD = "/cerbos.svc.v1.CerbosService/CheckResources"
KEY_SET = "shop"

POLICY = """\
# Equivalent of policies/tenants/acme.yaml, rule staff-read-orders.
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  version: default
  resource: vendor_order
  rules:
    - actions: ["read"]
      effect: EFFECT_ALLOW
      roles: ["*"]
      condition:
        match:
          all:
            of:
              - expr: >-
                  "vendor:staff" in request.aux_data.jwt.roles
                  || "vendor:manager" in request.aux_data.jwt.roles
              - expr: request.aux_data.jwt.tenant == request.resource.attr.tenant
"""


class CerbosError(RuntimeError):
    """Cerbos cannot be installed on this machine, or it did not start or answer."""


def ensure_installed(cache: Path) -> Path:
    """The Cerbos binary, installed with npm into ``cache`` unless already there."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise CerbosError(f"{PACKAGE} runs on Linux x86-64 only, not {platform.platform()}")
    binary = cache / "node_modules" / PACKAGE / PACKAGE.split("/")[1]
    if binary.exists() and version(binary) == VERSION:
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise CerbosError("npm not found: install Node.js and npm (apt-get install npm)")
    cache.mkdir(parents=True, exist_ok=True)
    argv = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache)]
    print(f"compare: installing {PACKAGE}@{VERSION} into {cache}", flush=True)
    try:
        done = subprocess.run(
            [*argv, f"{PACKAGE}@{VERSION}"], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired as exc:
        raise CerbosError("npm install did not finish within 600s") from exc
    if done.returncode != 0 or not binary.exists():
        raise CerbosError(f"npm install {PACKAGE}@{VERSION} failed: {done.stderr.strip()[-500:]}")
    return binary


def version(binary: Path) -> str:
    """The version a Cerbos binary reports (first line of ``--version``)."""
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.split("\n", 1)[0].strip()


def _config(grpc_port: int, http_port: int, policies: Path, jwks: Path) -> str:
    return f"""\
server:
  httpListenAddr: "{LOOPBACK}:{http_port}"
  grpcListenAddr: "{LOOPBACK}:{grpc_port}"
storage:
  driver: disk
  disk:
    directory: "{policies}"
    watchForChanges: false
auxData:
  jwt:
    keySets:
      - id: {KEY_SET}
        local:
          file: "{jwks}"
audit:
  enabled: false
telemetry:
  disabled: true
"""


@dataclass(frozen=True, slots=True)
class CerbosServer:
    """A running Cerbos: its gRPC target and the version it reports."""

    target: str
    version: str


@contextmanager
def serve(binary: Path, jwks: Path, work: Path, log: IO[bytes]) -> Iterator[CerbosServer]:
    """Run Cerbos with :data:`POLICY` until the block ends; SERVING before it yields."""
    policies = work / "cerbos-policies"
    policies.mkdir(parents=True, exist_ok=True)
    (policies / "vendor_order.yaml").write_text(POLICY)
    config = work / "cerbos.yaml"
    grpc_port = free_port()
    config.write_text(_config(grpc_port, free_port(), policies, jwks))
    argv = [str(binary), "server", f"--config={config}", "--log-level=warn"]
    env = {**os.environ, "CERBOS_NO_TELEMETRY": "1"}
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    target = f"{LOOPBACK}:{grpc_port}"
    try:
        deadline = time.monotonic() + 30
        while health_status(target) != "SERVING":
            if process.poll() is not None or time.monotonic() > deadline:
                raise CerbosError(f"cerbos did not start (exit status {process.poll()})")
            time.sleep(0.1)
        yield CerbosServer(target, version(binary))
    finally:
        processes.stop(process, 10)


def _message_class(pool: descriptor_pool.DescriptorPool, name: str) -> type[Message]:
    cls: type[Message] = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return cls


def check_resources(target: str, token: str, tenant: str) -> bytes:
    """A serialized CheckResourcesRequest: may the token's bearer read an order of ``tenant``."""
    request: dict[str, Any] = {
        "requestId": "bench",
        "principal": {"id": "bench", "roles": ["user"]},
        "resources": [
            {
                "actions": ["read"],
                "resource": {"kind": "vendor_order", "id": "1", "attr": {"tenant": tenant}},
            }
        ],
        "auxData": {"jwt": {"token": token, "keySetId": KEY_SET}},
    }
    with grpc.insecure_channel(target) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        message = _message_class(pool, "cerbos.request.v1.CheckResourcesRequest")()
        return json_format.ParseDict(request, message).SerializeToString()


def decide(target: str, request: bytes) -> tuple[str, int]:
    """One CheckResources call: the effect on ``read`` and the response's size in bytes."""
    with grpc.insecure_channel(target) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        response_class = _message_class(pool, "cerbos.response.v1.CheckResourcesResponse")
        call: Callable[..., bytes] = channel.unary_unary(CHECK_METHOD)
        raw = call(request, timeout=5)
    answer = json_format.MessageToDict(response_class.FromString(raw))
    return str(answer["results"][0]["actions"]["read"]), len(raw)
