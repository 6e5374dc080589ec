"""The front proxy: an Envoy bootstrap wired to our ext_authz server, and its process.

The ``envoy.filters.http.ext_authz`` filter is configured the way Istio's pilot builds
it for a CUSTOM ``envoyExtAuthzGrpc`` extension provider: ``envoy_grpc`` to a cluster
named like Istio's outbound cluster (with the ``|`` of the name replaced in the
``authority``, which gRPC servers would otherwise reject), HTTP/2 upstream, an explicit
``timeout`` on the gRPC service, ``transport_api_version: V3``, fail closed
(``failure_mode_allow: false``, ``status_on_error`` 403). Path normalisation is left
at Envoy's defaults so the authz server sees the raw path and applies its own rules.

With TLS (``EnvoyConfig.listener_tls``), the listener terminates mTLS and requires a
client certificate from a CA, as an Istio sidecar does on its inbound side: Envoy then
sends the caller's URI SAN as ``source.principal`` and, with ``include_peer_certificate``,
the certificate itself. ``EnvoyConfig.authz_tls`` makes Envoy reach the authz server
over mTLS, presenting its own certificate and checking the server's SPIFFE ID.

The stdout access log prints the ext_authz dynamic metadata (decision id, reason,
rule, tenant) next to method, path (without query) and status; it never prints
request headers, so tokens stay out of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dev import processes
from dev.mtls import Mtls
from dev.ports import LOOPBACK

__all__ = [
    "ACCESS_LOG_FORMAT",
    "EXT_AUTHZ_FILTER",
    "EnvoyConfig",
    "EnvoyError",
    "EnvoyProcess",
    "bootstrap",
    "envoy_binary",
    "start",
]

EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"

_META = f"%DYNAMIC_METADATA({EXT_AUTHZ_FILTER}:{{}})%"
ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %PATH(NQ)%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
    f"decision_id={_META.format('decision_id')} reason={_META.format('reason')} "
    f"rule={_META.format('rule')} tenant={_META.format('tenant')} "
    "duration_ms=%DURATION%\n"
)

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
_TYPES = "type.googleapis.com/envoy.extensions"


class EnvoyError(RuntimeError):
    """Envoy could not be found, exited early, or did not become ready in time."""


@dataclass(frozen=True, slots=True)
class EnvoyConfig:
    """Ports and knobs of one front proxy; everything listens on 127.0.0.1."""

    listen_port: int
    admin_port: int
    authz_port: int
    upstream_port: int
    authz_timeout_s: float = 2.0
    listener_tls: Mtls | None = None  # terminate mTLS; clients need a certificate from its ca
    authz_tls: Mtls | None = None  # call the authz server over mTLS

    def __post_init__(self) -> None:
        ports = (self.listen_port, self.admin_port, self.authz_port, self.upstream_port)
        for port in ports:
            if not 0 < port < 65536:
                raise ValueError(f"envoy: port out of range: {port}")
        if len(set(ports)) != len(ports):
            raise ValueError(f"envoy: ports must differ: {ports}")
        if self.authz_timeout_s <= 0:
            raise ValueError("envoy: authz_timeout_s must be positive")

    @property
    def authz_cluster(self) -> str:
        """Istio-style outbound cluster name of the authz service."""
        return f"outbound|{self.authz_port}||authz.local"


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def _transport_socket(tls: Mtls, *, downstream: bool) -> dict[str, Any]:
    """A TLS transport socket presenting ``tls.cert`` and verifying the peer against
    ``tls.ca`` (and ``tls.peer_id``); downstream, a client certificate is required."""
    validation: dict[str, Any] = {"trusted_ca": {"filename": str(tls.ca)}}
    if tls.peer_id is not None:
        san = {"san_type": "URI", "matcher": {"exact": tls.peer_id}}
        validation["match_typed_subject_alt_names"] = [san]
    common = {
        "tls_certificates": [
            {
                "certificate_chain": {"filename": str(tls.cert)},
                "private_key": {"filename": str(tls.key)},
            }
        ],
        "validation_context": validation,
    }
    kind = "DownstreamTlsContext" if downstream else "UpstreamTlsContext"
    context: dict[str, Any] = {
        "@type": f"{_TYPES}.transport_sockets.tls.v3.{kind}",
        "common_tls_context": common,
    }
    if downstream:
        common["alpn_protocols"] = ["h2", "http/1.1"]
        context["require_client_certificate"] = True
    else:
        common["alpn_protocols"] = ["h2"]
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _cluster(name: str, port: int, *, http2: bool, tls: Mtls | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": f"{_TYPES}.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    if tls is not None:
        cluster["transport_socket"] = _transport_socket(tls, downstream=False)
    return cluster


def _ext_authz_filter(cfg: EnvoyConfig) -> dict[str, Any]:
    return {
        "name": EXT_AUTHZ_FILTER,
        "typed_config": {
            "@type": f"{_TYPES}.filters.http.ext_authz.v3.ExtAuthz",
            "grpc_service": {
                "envoy_grpc": {
                    "cluster_name": cfg.authz_cluster,
                    "authority": cfg.authz_cluster.replace("|", "_."),
                },
                "timeout": f"{cfg.authz_timeout_s:g}s",
            },
            "transport_api_version": "V3",
            # Fail closed: an unreachable or erroring authz server must never let a
            # request through.
            "failure_mode_allow": False,
            "status_on_error": {"code": "Forbidden"},
            "include_peer_certificate": True,
        },
    }


def _http_connection_manager(cfg: EnvoyConfig) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": f"{_HCM}.HttpConnectionManager",
            "stat_prefix": "ingress_http",
            "codec_type": "AUTO",
            "access_log": [
                {
                    "name": "envoy.access_loggers.stdout",
                    "typed_config": {
                        "@type": f"{_TYPES}.access_loggers.stream.v3.StdoutAccessLog",
                        "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
                    },
                }
            ],
            "route_config": {
                "name": "local_route",
                "virtual_hosts": [
                    {
                        "name": "api",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
                    }
                ],
            },
            "http_filters": [
                _ext_authz_filter(cfg),
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": f"{_TYPES}.filters.http.router.v3.Router"},
                },
            ],
            **_client_certificate_forwarding(cfg),
        },
    }


def _client_certificate_forwarding(cfg: EnvoyConfig) -> dict[str, Any]:
    """Like an Istio sidecar, tell the upstream the caller's SPIFFE ID in
    x-forwarded-client-cert, set by Envoy after dropping any the client sent."""
    if cfg.listener_tls is None:
        return {}
    return {
        "forward_client_cert_details": "SANITIZE_SET",
        "set_current_client_cert_details": {"uri": True},
    }


# An explicit cap on downstream connections (Envoy warns at startup without one).
_DOWNSTREAM_LIMIT = {
    "name": "envoy.resource_monitors.global_downstream_max_connections",
    "typed_config": {
        "@type": f"{_TYPES}.resource_monitors.downstream_connections.v3"
        ".DownstreamConnectionsConfig",
        "max_active_downstream_connections": 10000,
    },
}


def bootstrap(cfg: EnvoyConfig) -> str:
    """Return the Envoy v3 bootstrap for ``cfg`` as JSON (which Envoy reads as YAML)."""
    chain: dict[str, Any] = {"filters": [_http_connection_manager(cfg)]}
    if cfg.listener_tls is not None:
        chain["transport_socket"] = _transport_socket(cfg.listener_tls, downstream=True)
    config = {
        "admin": {"address": _address(cfg.admin_port)},
        "overload_manager": {"resource_monitors": [_DOWNSTREAM_LIMIT]},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": _address(cfg.listen_port),
                    "filter_chains": [chain],
                }
            ],
            "clusters": [
                _cluster(cfg.authz_cluster, cfg.authz_port, http2=True, tls=cfg.authz_tls),
                _cluster("upstream", cfg.upstream_port, http2=False),
            ],
        },
    }
    return json.dumps(config, indent=2)


def envoy_binary() -> str:
    """The ``envoy`` next to the running interpreter (the venv's), else the one on PATH."""
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if found is None:
        raise EnvoyError("envoy binary not found next to the interpreter nor on PATH")
    return found


@dataclass(slots=True)
class EnvoyProcess:
    """A running Envoy; :meth:`stop` ends it."""

    cfg: EnvoyConfig
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def admin_url(self) -> str:
        """Base URL of the admin interface."""
        return f"http://{LOOPBACK}:{self.cfg.admin_port}"

    @property
    def url(self) -> str:
        """Base URL of the listener."""
        scheme = "http" if self.cfg.listener_tls is None else "https"
        return f"{scheme}://{LOOPBACK}:{self.cfg.listen_port}"

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Block until ``/ready`` answers ``LIVE``; raise :class:`EnvoyError` otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EnvoyError(f"envoy exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1) as resp:  # noqa: S310 - fixed http URL
                    if resp.read().strip() == b"LIVE":
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise EnvoyError(f"envoy admin {self.admin_url}/ready not LIVE after {timeout_s:g}s")

    def stop(self, timeout_s: float = 10.0) -> int:
        """Terminate Envoy (SIGTERM, then SIGKILL) and return its exit status."""
        return processes.stop(self.process, timeout_s)


def start(
    cfg: EnvoyConfig,
    *,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
    log_level: str = "warning",
) -> EnvoyProcess:
    """Start Envoy with the bootstrap for ``cfg``; call :meth:`EnvoyProcess.wait_ready` next.

    ``--use-dynamic-base-id`` lets several Envoys (tests, ``make run``) share a host;
    access log lines are flushed every 200 ms instead of Envoy's default 10 s.
    """
    argv = [
        envoy_binary(),
        "--config-yaml",
        bootstrap(cfg),
        "--use-dynamic-base-id",
        "--concurrency",
        "1",
        "--log-level",
        log_level,
        "--file-flush-interval-msec",
        "200",
    ]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    return EnvoyProcess(cfg, process)
