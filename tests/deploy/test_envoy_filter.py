"""The end-to-end tests' Envoy asks authz the way an Istio sidecar does.

For a CUSTOM ``envoyExtAuthzGrpc`` provider, istiod builds the HTTP ext_authz
filter in ``pilot/pkg/security/authz/builder/extauthz.go`` (``generateGRPCConfig``):

- ``grpc_service.envoy_grpc.cluster_name``: the outbound cluster of the provider's
  Service, ``outbound|PORT||HOSTNAME`` (an ordinary cluster: DestinationRules apply);
- ``grpc_service.envoy_grpc.authority``: the hostname (Istio 1.19 on, istio/istio#46289);
  before, the cluster name with ``|`` replaced by ``_.``, since gRPC servers reject
  ``|`` in ``:authority``;
- ``grpc_service.timeout``: the provider's ``timeout`` (600 s when not set);
- ``transport_api_version: V3``;
- ``failure_mode_allow``: the provider's ``failOpen``;
- ``status_on_error``: ``statusOnError`` as an HTTP status code, when set;
- ``with_request_body`` from ``includeRequestBodyInCheck`` and ``clear_route_cache``
  from ``clearRouteCache``, only when set;
- ``filter_enabled_metadata``: runs the filter only for requests that Istio's shadow
  RBAC filter (the CUSTOM policy's rules) selected.

Istio never sets ``include_peer_certificate`` (the mesh config has no switch for it)
nor header filters: over gRPC every request header is sent. This module builds that
filter from the mesh config in deploy/ and compares it with dev/envoy.py's.
"""

from __future__ import annotations

import http
import json
from typing import Any

import pytest

from dev.envoy import EXT_AUTHZ_FILTER, EnvoyConfig, bootstrap
from tests.deploy.manifests import DEPLOY, load_documents

EXT_AUTHZ_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
DEV = EnvoyConfig(listen_port=10000, admin_port=10001, authz_port=9191, upstream_port=10002)
DEV_HOSTNAME = "authz.local"

# Set by the dev Envoy only, and why.
DEV_ONLY = {
    # Lets the end-to-end tests exercise Revocations.certificateSerials, which
    # under Istio only a plain Envoy can feed (docs/istio.md, section 5).
    "include_peer_certificate",
}
# Set by Istio only, and why the dev Envoy does without.
ISTIO_ONLY = {
    # Gates the filter on Istio's shadow RBAC filter; the dev Envoy checks every request.
    "filter_enabled_metadata",
}


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def istio_ext_authz(grpc: dict[str, Any], hostname: str) -> dict[str, Any]:
    """The typed_config istiod generates for an ``envoyExtAuthzGrpc`` provider.

    ``filter_enabled_metadata`` is left out (see ISTIO_ONLY); ``authority`` is
    Istio 1.19's.
    """
    cluster = f"outbound|{grpc['port']}||{hostname}"
    config: dict[str, Any] = {
        "@type": EXT_AUTHZ_TYPE,
        "grpc_service": {
            "envoy_grpc": {"cluster_name": cluster, "authority": hostname},
            "timeout": grpc.get("timeout", "600s"),
        },
        "transport_api_version": "V3",
        "failure_mode_allow": grpc.get("failOpen", False),
    }
    if "statusOnError" in grpc:
        status = http.HTTPStatus(int(grpc["statusOnError"]))
        config["status_on_error"] = {"code": status.phrase.replace(" ", "")}
    if "includeRequestBodyInCheck" in grpc:
        body = grpc["includeRequestBodyInCheck"]
        config["with_request_body"] = {
            "max_request_bytes": body.get("maxRequestBytes", 0),
            "allow_partial_message": body.get("allowPartialMessage", False),
            "pack_as_bytes": body.get("packAsBytes", False),
        }
    if grpc.get("clearRouteCache"):
        config["clear_route_cache"] = True
    return config


def _deployed_provider() -> dict[str, Any]:
    (operator,) = load_documents(DEPLOY / "mesh" / "istio-operator.yaml")
    (provider,) = operator["spec"]["meshConfig"]["extensionProviders"]
    grpc: dict[str, Any] = provider["envoyExtAuthzGrpc"]
    return grpc


def _dev_bootstrap() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(bootstrap(DEV))
    return config


def _dev_http_filters() -> list[dict[str, Any]]:
    (listener,) = _dev_bootstrap()["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    filters: list[dict[str, Any]] = manager["typed_config"]["http_filters"]
    return filters


@pytest.fixture
def expected() -> dict[str, Any]:
    """Istio's filter for the deployed provider, with the dev Envoy's service, port and
    timeout (those differ by environment; everything else comes from deploy/)."""
    grpc = {
        **_deployed_provider(),
        "service": DEV_HOSTNAME,
        "port": DEV.authz_port,
        "timeout": f"{DEV.authz_timeout_s:g}s",
    }
    return istio_ext_authz(grpc, DEV_HOSTNAME)


@pytest.fixture
def dev() -> dict[str, Any]:
    (found,) = [f for f in _dev_http_filters() if f["name"] == EXT_AUTHZ_FILTER]
    config: dict[str, Any] = found["typed_config"]
    return config


def test_the_dev_filter_sets_what_istio_sets(expected: dict[str, Any], dev: dict[str, Any]) -> None:
    assert set(dev) - DEV_ONLY == set(expected)
    assert not ISTIO_ONLY & set(dev)
    for field in set(expected) - {"grpc_service"}:
        assert dev[field] == expected[field], field


def test_the_dev_filter_calls_the_outbound_cluster(
    expected: dict[str, Any], dev: dict[str, Any]
) -> None:
    want, got = expected["grpc_service"], dev["grpc_service"]
    assert set(got) == set(want)
    assert _seconds(got["timeout"]) == _seconds(want["timeout"])
    assert set(got["envoy_grpc"]) == {"cluster_name", "authority"}
    cluster = want["envoy_grpc"]["cluster_name"]
    assert got["envoy_grpc"]["cluster_name"] == cluster
    # Istio 1.19 on / before 1.19: either way a valid :authority, never the raw name.
    authorities = {want["envoy_grpc"]["authority"], cluster.replace("|", "_.")}
    assert got["envoy_grpc"]["authority"] in authorities


def test_the_dev_cluster_speaks_http2() -> None:
    """Istio's outbound cluster for a port with appProtocol grpc is HTTP/2; so is dev's."""
    cluster_name = f"outbound|{DEV.authz_port}||{DEV_HOSTNAME}"
    clusters = _dev_bootstrap()["static_resources"]["clusters"]
    (cluster,) = [c for c in clusters if c["name"] == cluster_name]
    options = cluster["typed_extension_protocol_options"]
    (http_options,) = options.values()
    assert "http2_protocol_options" in http_options["explicit_http_config"]


def test_ext_authz_runs_before_routing() -> None:
    names = [f["name"] for f in _dev_http_filters()]
    assert names[0] == EXT_AUTHZ_FILTER
    assert names[-1] == "envoy.filters.http.router"


def test_the_deployed_provider_maps_to_a_fail_closed_filter() -> None:
    config = istio_ext_authz(_deployed_provider(), "authz.authz-system.svc.cluster.local")
    assert config["failure_mode_allow"] is False
    assert config["status_on_error"] == {"code": "Forbidden"}
    assert _seconds(config["grpc_service"]["timeout"]) == 0.5
    assert config["grpc_service"]["envoy_grpc"]["cluster_name"] == (
        "outbound|9191||authz.authz-system.svc.cluster.local"
    )
    assert "with_request_body" not in config
