"""JSON Schemas for the Istio resources in deploy/, derived from Istio's published API.

The Kubernetes schemas know nothing of Istio's custom resources. These schemas
follow the structure of Istio's CRDs (``crd-all.gen.yaml``: AuthorizationPolicy,
PeerAuthentication and DestinationRule, ``security.istio.io/v1`` and
``networking.istio.io/v1``) and of ``MeshConfig.ExtensionProvider`` in
``mesh/v1alpha1/config.proto`` for the IstioOperator's mesh config. They cover the
fields those APIs define for the parts deploy/ uses, and are stricter than the API
server in one way on purpose: an unknown field is an error here, where Kubernetes
would silently prune it. A misspelled ``selector`` would otherwise widen a policy
to its whole namespace without a word.

Istio's own admission checks that matter here are added too: a CUSTOM policy must
name a provider (and only a CUSTOM one may), ``selector`` and ``targetRef(s)``
exclude each other, and a mesh-config duration is a protobuf duration (``0.5s``).
"""

from __future__ import annotations

from typing import Any

import jsonschema

__all__ = ["SCHEMAS", "problems"]

Schema = dict[str, Any]

_STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
_PROTO_DURATION = r"^[0-9]+(\.[0-9]{1,9})?s$"  # google.protobuf.Duration in JSON/YAML
_GO_DURATION = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$"  # durations of Istio's CRDs
_LABEL_VALUE: Schema = {"type": "string", "maxLength": 63, "pattern": r"^[^*]*$"}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A closed object: only ``properties``, ``required`` among them."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _resource(api_version: str, kind: str, spec: Schema) -> Schema:
    metadata = {
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1}},
        "required": ["name"],
    }
    return _object(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": metadata,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


_SELECTOR = _object(
    {"matchLabels": {"type": "object", "additionalProperties": _LABEL_VALUE, "minProperties": 1}}
)
_TARGET_REF = _object(
    {
        "group": {"type": "string"},
        "kind": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string", "maxLength": 0},
    },
    ("kind", "name"),
)
_SOURCE_FIELDS = (
    "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
    "namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
    "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks",
)  # fmt: skip
_OPERATION_FIELDS = (
    "hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths",
)  # fmt: skip
_RULE = _object(
    {
        "from": {
            "type": "array",
            "maxItems": 512,
            "items": _object({"source": _object({f: _STRINGS for f in _SOURCE_FIELDS})}),
        },
        "to": {
            "type": "array",
            "items": _object({"operation": _object({f: _STRINGS for f in _OPERATION_FIELDS})}),
        },
        "when": {
            "type": "array",
            "items": _object(
                {"key": {"type": "string"}, "values": _STRINGS, "notValues": _STRINGS}, ("key",)
            ),
        },
    }
)
_AUTHORIZATION_SPEC = _object(
    {
        "selector": _SELECTOR,
        "targetRef": _TARGET_REF,
        "targetRefs": {"type": "array", "maxItems": 16, "items": _TARGET_REF},
        "action": {"enum": ["ALLOW", "DENY", "AUDIT", "CUSTOM"]},
        "provider": _object({"name": {"type": "string", "minLength": 1}}, ("name",)),
        "rules": {"type": "array", "maxItems": 512, "items": _RULE},
    }
)
_AUTHORIZATION_SPEC["allOf"] = [
    {  # CUSTOM needs a provider, and only CUSTOM may name one
        "if": {"properties": {"action": {"const": "CUSTOM"}}, "required": ["action"]},
        "then": {"required": ["provider"]},
        "else": {"not": {"required": ["provider"]}},
    },
    {  # at most one of selector, targetRef, targetRefs
        "not": {
            "anyOf": [
                {"required": ["selector", "targetRef"]},
                {"required": ["selector", "targetRefs"]},
                {"required": ["targetRef", "targetRefs"]},
            ]
        }
    },
]

_MTLS_MODE = {"enum": ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]}
_PEER_AUTHENTICATION_SPEC = _object(
    {
        "selector": _SELECTOR,
        "mtls": _object({"mode": _MTLS_MODE}),
        "portLevelMtls": {
            "type": "object",
            "propertyNames": {"pattern": r"^[0-9]+$"},
            "additionalProperties": _object({"mode": _MTLS_MODE}),
        },
    }
)

_DURATION: Schema = {"type": "string", "pattern": _GO_DURATION}
_COUNT: Schema = {"type": "integer", "minimum": 0}
_TRAFFIC_POLICY = _object(
    {
        "tls": _object(
            {
                "mode": {"enum": ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]},
                "clientCertificate": {"type": "string"},
                "privateKey": {"type": "string"},
                "caCertificates": {"type": "string"},
                "credentialName": {"type": "string"},
                "subjectAltNames": _STRINGS,
                "sni": {"type": "string"},
                "insecureSkipVerify": {"type": "boolean"},
            }
        ),
        "outlierDetection": _object(
            {
                "consecutiveGatewayErrors": _COUNT,
                "consecutive5xxErrors": _COUNT,
                "consecutiveLocalOriginFailures": _COUNT,
                "splitExternalLocalOriginErrors": {"type": "boolean"},
                "interval": _DURATION,
                "baseEjectionTime": _DURATION,
                "maxEjectionPercent": {"type": "integer", "minimum": 0, "maximum": 100},
                "minHealthPercent": {"type": "integer", "minimum": 0, "maximum": 100},
            }
        ),
        "connectionPool": {"type": "object"},
        "loadBalancer": {"type": "object"},
        "portLevelSettings": {"type": "array"},
        "proxyProtocol": {"type": "object"},
        "tunnel": {"type": "object"},
    }
)
_DESTINATION_RULE_SPEC = _object(
    {
        "host": {"type": "string", "minLength": 1},
        "trafficPolicy": _TRAFFIC_POLICY,
        "subsets": {"type": "array"},
        "exportTo": _STRINGS,
        "workloadSelector": _SELECTOR,
    },
    ("host",),
)

# MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationGrpcProvider. The header
# lists (includeRequestHeadersInCheck, headersToUpstreamOnAllow...) belong to the
# HTTP provider only: here they are errors, not settings that silently do nothing.
_EXT_AUTHZ_GRPC = _object(
    {
        "service": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "timeout": {"type": "string", "pattern": _PROTO_DURATION},
        "failOpen": {"type": "boolean"},
        "clearRouteCache": {"type": "boolean"},
        "statusOnError": {"type": "string", "pattern": r"^[1-5][0-9][0-9]$"},
        "includeRequestBodyInCheck": _object(
            {
                "maxRequestBytes": {"type": "integer", "minimum": 0},
                "allowPartialMessage": {"type": "boolean"},
                "packAsBytes": {"type": "boolean"},
            }
        ),
    },
    ("service", "port"),
)
_PROVIDER_KINDS = (
    "envoyExtAuthzHttp", "zipkin", "lightstep", "datadog", "stackdriver", "opencensus",
    "skywalking", "opentelemetry", "prometheus", "envoyFileAccessLog", "envoyHttpAls",
    "envoyTcpAls", "envoyOtelAls",
)  # fmt: skip
_EXTENSION_PROVIDER: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "envoyExtAuthzGrpc": _EXT_AUTHZ_GRPC,
        **{kind: {"type": "object"} for kind in _PROVIDER_KINDS},
    },
    "required": ["name"],
    "additionalProperties": False,
    "minProperties": 2,  # the name and exactly one provider
    "maxProperties": 2,
}
_ISTIO_OPERATOR_SPEC: Schema = {
    "type": "object",
    "properties": {
        # MeshConfig has dozens of fields; only extensionProviders is checked closely.
        "meshConfig": {
            "type": "object",
            "properties": {
                "extensionProviders": {
                    "type": "array",
                    "items": _EXTENSION_PROVIDER,
                    "minItems": 1,
                }
            },
        },
    },
}

SCHEMAS: dict[str, Schema] = {
    "AuthorizationPolicy": _resource(
        "security.istio.io/v1", "AuthorizationPolicy", _AUTHORIZATION_SPEC
    ),
    "PeerAuthentication": _resource(
        "security.istio.io/v1", "PeerAuthentication", _PEER_AUTHENTICATION_SPEC
    ),
    "DestinationRule": _resource(
        "networking.istio.io/v1", "DestinationRule", _DESTINATION_RULE_SPEC
    ),
    "IstioOperator": _resource("install.istio.io/v1alpha1", "IstioOperator", _ISTIO_OPERATOR_SPEC),
}


def problems(obj: dict[str, Any]) -> list[str]:
    """Every violation of the schema for ``obj``'s kind, as ``kind/name at path: message``."""
    schema = SCHEMAS[obj["kind"]]
    validator = jsonschema.Draft202012Validator(schema)
    name = f"{obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"
    found = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(part) for part in error.path) or "."
        found.append(f"{name} at {where}: {error.message}")
    return found
