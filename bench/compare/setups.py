"""The setups of the comparison: how each is started and what request it gets.

Every setup answers the same question — may acme's vendor staff read acme's orders —
in its own form: a framed CheckRequest for the two ext_authz gRPC servers, an HTTP GET
with the bearer token for the three Envoy setups, a CheckResourcesRequest for Cerbos.
Before any load, each setup gets one real request, which must come back allowed;
the size of that good answer is what every answer under load is checked against.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.compare import cerbos, pinning, proxies
from bench.compare.load import Request
from bench.load_request import CHECK_METHOD, frame
from bench.load_run import LoadError, ceiling_server, sample_call
from dev.authz_server import ONE_PROCESS, AuthzServer
from dev.bundle import ScratchBundle
from dev.envoy import EnvoyConfig
from dev.ports import LOOPBACK, free_port

__all__ = ["HOST", "PATH", "SETUPS", "Setup", "Target", "Workload"]

HOST = "api.shop.example.com"
PATH = "/api/v1/vendors/acme/orders"
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


@dataclass(frozen=True, slots=True)
class Workload:
    """The request every setup is asked, and where setups keep their files and logs."""

    bundle: ScratchBundle
    token: str
    check_request: bytes  # a serialized CheckRequest for GET PATH on HOST with the token
    work: Path
    cerbos_cache: Path
    envoy_cpus: frozenset[int] | None = None  # where Envoy runs; None: with the servers


@dataclass(frozen=True, slots=True)
class Target:
    """A started setup: the request to load it with, and versions worth recording."""

    request: Request
    versions: dict[str, str]


StartSetup = Callable[[Workload], AbstractContextManager[Target]]


@dataclass(frozen=True, slots=True)
class Setup:
    """One line of the comparison: what it is, and how to start it."""

    description: str
    start: StartSetup


def _grpc_request(
    workload: Workload, target: str, method: str, message: bytes, response_bytes: int
) -> Request:
    """A gRPC call of ``method`` at ``target`` (host:port) for h2load: a POST of ``message``."""
    body = workload.work / f"request-{target.replace(':', '-')}.grpc"
    body.write_bytes(frame(message))
    return Request(f"http://{target}{method}", GRPC_HEADERS, body, 5 + response_bytes)


@contextmanager
def _ceiling(workload: Workload) -> Iterator[Target]:
    with ceiling_server(workload.work) as port:
        size = sample_call(port, workload.check_request)
        target = f"{LOOPBACK}:{port}"
        yield Target(
            _grpc_request(workload, target, CHECK_METHOD, workload.check_request, size), {}
        )


#: ``authz-cached``: the decision cache on; h2load replays one request, so every call
#: after the first is a hit — the cache's upper bound, not a hit rate to expect.
DECISION_CACHE = ("--decision-cache", "10000")


@contextmanager
def _authz(workload: Workload, options: tuple[str, ...] = ()) -> Iterator[AuthzServer]:
    with (workload.work / "authz-server.log").open("ab") as log:
        options = (*ONE_PROCESS, *options)
        server = AuthzServer(workload.bundle.path, free_port(), stderr=log, options=options)
        server.start()
        try:
            server.wait_serving()
            yield server
        finally:
            server.stop()


def _authz_direct(options: tuple[str, ...] = ()) -> StartSetup:
    @contextmanager
    def start(workload: Workload) -> Iterator[Target]:
        with _authz(workload, options) as server:
            size = sample_call(server.port, workload.check_request)
            request = _grpc_request(
                workload, server.target, CHECK_METHOD, workload.check_request, size
            )
            yield Target(request, {})

    return start


def _http_headers(token: str) -> dict[str, str]:
    return {
        "accept": "application/json",
        "authorization": f"Bearer {token}",
        "user-agent": "bench-load/1.0",
    }


def _sample_get(url: str, token: str) -> int:
    """One real GET through Envoy; the body size of its 200, else :class:`LoadError`."""
    headers = {"host": HOST, **_http_headers(token)}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - an http URL we built
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - as above
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise LoadError(f"sample GET {url} was {exc.code}, not 200") from exc
    if body != proxies.UPSTREAM_BODY.encode():
        raise LoadError(f"sample GET {url} did not reach the upstream: {body[:80]!r}")
    return len(body)


def _envoy(authorization: proxies.Authorization, *, ceiling: bool = False) -> StartSetup:
    """An Envoy setup; with ``ceiling``, ext_authz calls the bare grpc.aio server, not authz."""

    @contextmanager
    def start(workload: Workload) -> Iterator[Target]:
        with ExitStack() as stack:
            authz_port = free_port()
            if authorization == "ext_authz" and ceiling:
                authz_port = stack.enter_context(ceiling_server(workload.work))
            elif authorization == "ext_authz":
                authz_port = stack.enter_context(_authz(workload)).port
            cfg = EnvoyConfig(free_port(), free_port(), authz_port, free_port())
            issuer = workload.bundle.issuer
            jwt = proxies.JwtIssuer(issuer.issuer, issuer.audience, issuer.jwks_file.read_text())
            out = stack.enter_context((workload.work / f"envoy-{authorization}.log").open("ab"))
            envoy = proxies.start(cfg, authorization, jwt, stdout=out, stderr=out)
            stack.callback(envoy.stop)
            envoy.wait_ready()
            if workload.envoy_cpus is not None:
                pinning.move(envoy.process.pid, workload.envoy_cpus)
            url = f"{envoy.url}{PATH}"
            size = _sample_get(url, workload.token)
            # h2load speaks HTTP/2, where the host is the :authority pseudo-header.
            headers = [f":authority: {HOST}"]
            headers += [f"{name}: {value}" for name, value in _http_headers(workload.token).items()]
            yield Target(Request(url, tuple(headers), None, size), {})

    return start


@contextmanager
def _cerbos(workload: Workload) -> Iterator[Target]:
    binary = cerbos.ensure_installed(workload.cerbos_cache)
    jwks = workload.bundle.issuer.jwks_file
    with (
        (workload.work / "cerbos.log").open("ab") as log,
        cerbos.serve(binary, jwks, workload.work, log) as server,
    ):
        message = cerbos.check_resources(server.target, workload.token, "acme")
        effect, size = cerbos.decide(server.target, message)
        if effect != "EFFECT_ALLOW":
            raise LoadError(f"cerbos sample CheckResources was {effect}, not EFFECT_ALLOW")
        request = _grpc_request(workload, server.target, cerbos.CHECK_METHOD, message, size)
        yield Target(request, {"cerbos": server.version})


SETUPS: dict[str, Setup] = {
    "grpc-ceiling": Setup("bare grpc.aio server, answers OK without reading (gRPC)", _ceiling),
    "authz": Setup("authz serve on policies/, CheckRequest over gRPC", _authz_direct()),
    "authz-cached": Setup(
        "authz serve --decision-cache 10000, one request replayed: every call a hit (gRPC)",
        _authz_direct(DECISION_CACHE),
    ),
    "envoy": Setup("Envoy, no authorization, trivial upstream (HTTP)", _envoy("none")),
    "envoy-rbac": Setup("Envoy jwt_authn + RBAC with a CEL condition (HTTP)", _envoy("rbac")),
    "envoy-authz": Setup("Envoy + ext_authz to authz serve (HTTP)", _envoy("ext_authz")),
    "envoy-ceiling": Setup(
        "Envoy + ext_authz to the bare grpc.aio server: the floor for any Python ext_authz (HTTP)",
        _envoy("ext_authz", ceiling=True),
    ),
    "cerbos": Setup(f"Cerbos {cerbos.VERSION}, CheckResources over gRPC", _cerbos),
}
