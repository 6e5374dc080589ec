"""The three Envoy setups of the comparison, all derived from :func:`dev.envoy.bootstrap`.

Each one is the front proxy of ``make run`` with only its authorization filter
swapped, so the difference between two setups is that filter and nothing else:

* ``none``: no authorization filter at all (Envoy's own cost);
* ``rbac``: Envoy's native ``jwt_authn`` (verifies the token against the bundle's
  JWKS, caches verified tokens like our server does) followed by the native ``rbac``
  filter with one ALLOW policy whose CEL condition is the example bundle's
  ``acme-vendor/staff-read-orders`` rule (:data:`RBAC_RULE`);
* ``ext_authz``: the ``dev.envoy`` configuration unchanged, calling our server.

The upstream is a second listener of the same Envoy answering 200 from a
``direct_response`` route over HTTP/1.1 keep-alive: trivial, identical for the three,
and never the bottleneck the way a Python upstream would be.

Envoy 1.40 rejects ``cel_expr_string`` in an RBAC condition, so the rule is written
as CEL text and turned into the parsed-expression form (``google.api.expr.v1alpha1.Expr``)
with cel-expr-python, the CEL implementation our server uses.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from dataclasses import dataclass
from typing import IO, Any, Literal

import cel_expr_python.cel as cel
from google.protobuf import any_pb2

from dev.envoy import EnvoyConfig, EnvoyProcess, bootstrap, envoy_binary
from dev.ports import LOOPBACK

__all__ = ["JWT_METADATA", "RBAC_RULE", "UPSTREAM_BODY", "Authorization", "JwtIssuer", "start"]

Authorization = Literal["none", "rbac", "ext_authz"]

UPSTREAM_BODY = "upstream ok\n"
JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_METADATA = "jwt"  # key of the verified payload in the jwt_authn dynamic metadata
_TYPES = "type.googleapis.com/envoy.extensions"
_HCM_NAME = "envoy.filters.network.http_connection_manager"
_CLAIMS = f'metadata.filter_metadata["{JWT_FILTER}"]["{JWT_METADATA}"]'

# policies/tenants/acme.yaml, rule staff-read-orders, on the host its policy names.
RBAC_RULE = f"""
request.host == "api.shop.example.com"
&& request.method == "GET"
&& (request.url_path == "/api/v1/vendors/acme/orders"
    || request.url_path.startsWith("/api/v1/vendors/acme/orders/"))
&& ("vendor:staff" in {_CLAIMS}["roles"] || "vendor:manager" in {_CLAIMS}["roles"])
&& {_CLAIMS}["tenant"] == "acme"
"""


@dataclass(frozen=True, slots=True)
class JwtIssuer:
    """What ``jwt_authn`` needs to verify the bundle's tokens: issuer, audience, JWKS."""

    issuer: str
    audience: str
    jwks: str  # the JWKS document, JSON


def parsed_condition(source: str) -> dict[str, Any]:
    """CEL text as the JSON of a parsed ``Expr`` (what the RBAC ``condition`` field takes)."""
    env = cel.NewEnv(variables={"request": cel.Type.DYN, "metadata": cel.Type.DYN})
    packed = any_pb2.Any.FromString(env.compile(source, disable_check=True).serialize())
    with warnings.catch_warnings():
        # envoy-data-plane's pydantic models emit deprecation warnings when imported.
        warnings.simplefilter("ignore", DeprecationWarning)
        from envoy_data_plane.google.api.expr.v1alpha1 import ParsedExpr
    # cel.expr.ParsedExpr and google.api.expr.v1alpha1.ParsedExpr share one wire format.
    expr: dict[str, Any] = ParsedExpr.parse(packed.value).expr.to_dict()
    return expr


def _jwt_authn(issuer: JwtIssuer) -> dict[str, Any]:
    provider = {
        "issuer": issuer.issuer,
        "audiences": [issuer.audience],
        "local_jwks": {"inline_string": issuer.jwks},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "payload_in_metadata": JWT_METADATA,
        "jwt_cache_config": {"jwt_cache_size": 1000},
    }
    return {
        "name": JWT_FILTER,
        "typed_config": {
            "@type": f"{_TYPES}.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"shop": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "shop"}}],
        },
    }


def _rbac() -> dict[str, Any]:
    policy = {
        "permissions": [{"any": True}],
        "principals": [{"any": True}],
        "condition": parsed_condition(RBAC_RULE),
    }
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": f"{_TYPES}.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {"acme-staff-read-orders": policy}},
        },
    }


def _upstream_listener(port: int) -> dict[str, Any]:
    answer = {"status": 200, "body": {"inline_string": UPSTREAM_BODY}}
    route = {"match": {"prefix": "/"}, "direct_response": answer}
    manager = {
        "@type": f"{_TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "trivial_upstream",
        "route_config": {"virtual_hosts": [{"name": "any", "domains": ["*"], "routes": [route]}]},
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": f"{_TYPES}.filters.http.router.v3.Router"},
            }
        ],
    }
    return {
        "name": "trivial_upstream",
        "address": {"socket_address": {"address": LOOPBACK, "port_value": port}},
        "filter_chains": [{"filters": [{"name": _HCM_NAME, "typed_config": manager}]}],
    }


def front_bootstrap(
    cfg: EnvoyConfig, authorization: Authorization, issuer: JwtIssuer | None = None
) -> str:
    """The ``dev.envoy`` bootstrap with ``authorization`` in place of its ext_authz filter."""
    config: dict[str, Any] = json.loads(bootstrap(cfg))
    listeners: list[dict[str, Any]] = config["static_resources"]["listeners"]
    manager = listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
    ext_authz, router = manager["http_filters"]
    if authorization == "none":
        manager["http_filters"] = [router]
    elif authorization == "rbac":
        if issuer is None:
            raise ValueError("rbac: the JWT issuer is required")
        manager["http_filters"] = [_jwt_authn(issuer), _rbac(), router]
    else:
        manager["http_filters"] = [ext_authz, router]
    listeners.append(_upstream_listener(cfg.upstream_port))
    return json.dumps(config, indent=2)


def start(
    cfg: EnvoyConfig,
    authorization: Authorization,
    issuer: JwtIssuer | None,
    *,
    stdout: IO[bytes],
    stderr: IO[bytes],
) -> EnvoyProcess:
    """Start Envoy like :func:`dev.envoy.start` does, with :func:`front_bootstrap`."""
    argv = [
        envoy_binary(),
        "--config-yaml", front_bootstrap(cfg, authorization, issuer),
        "--use-dynamic-base-id",
        "--concurrency", "1",
        "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    return EnvoyProcess(cfg, process)
