"""Bundle errors (spec §1-§4): every problem at ``file:line:column: path: message``.

Each case is a small bundle and the exact list of error lines it must produce,
given as prefixes of ``str(PolicyError)``: position, YAML path, then the start of
(or the telling part of) the message. ``{root}`` stands for the bundle directory.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jwt
import pytest

from authz.errors import BundleError, PolicyError
from authz.identity.minting import new_private_key
from authz.policy.bundle import load_bundle
from tests.policy.bundles import SigningKey, write_bundle

OK_POLICY = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: ok}
spec:
  rules: [{name: r}]
"""


def doc(kind: str, body: str, meta: str = "{name: p}") -> str:
    """A document whose ``spec`` body starts at line 5, column 3."""
    spec = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
    return f"apiVersion: authz/v1\nkind: {kind}\nmetadata: {meta}\nspec:\n{spec}\n"


def rule(body: str) -> str:
    """A Policy ``p`` with one rule ``r`` whose further fields start at line 7, column 7."""
    fields = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return doc("Policy", f"rules:\n  - name: r\n{fields}")


def issuer(body: str, name: str = "idp") -> str:
    """An Issuer whose spec fields start at line 5, column 3."""
    return doc("Issuer", body, f"{{name: {name}}}")


def tenancy(body: str, name: str = "t") -> str:
    """A Tenancy whose spec fields start at line 5, column 3."""
    return doc("Tenancy", body, f"{{name: {name}}}")


ISSUER_OK = "issuer: https://i\naudiences: [a]\njwksFile: keys/jwks.json"


def _private_jwk() -> dict[str, str]:
    jwk: dict[str, str] = jwt.algorithms.ECAlgorithm.to_jwk(new_private_key("ES256"), as_dict=True)
    return jwk


CASES = [
    # --- documents: apiVersion, kind, top-level fields ----------------------------
    pytest.param(
        {"p.yaml": OK_POLICY.replace("authz/v1", "authz/v2")},
        ["p.yaml:1:13: apiVersion: unknown apiVersion; expected 'authz/v1'"],
        id="unknown-apiVersion",
    ),
    pytest.param(
        {"p.yaml": OK_POLICY.replace("kind: Policy", "kind: Polcy")},
        ["p.yaml:2:7: kind: unknown kind 'Polcy'"],
        id="unknown-kind",
    ),
    pytest.param(
        {"p.yaml": OK_POLICY + "status: {}\n"},
        ["p.yaml:6:9: status: unknown field 'status'"],
        id="unknown-top-level-field",
    ),
    pytest.param(
        {"p.yaml": OK_POLICY.replace("{name: ok}", "{name: ok, labels: {}}")},
        ["p.yaml:3:30: metadata.labels: unknown field 'labels'"],
        id="unknown-metadata-field",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "rules: [{name: r}]\nhost: [a.example]")},
        ["p.yaml:6:9: spec.host: unknown field 'host'; expected one of hosts, rules"],
        id="unknown-spec-field",
    ),
    pytest.param(
        {"p.yaml": rule("principals: [a]")},
        ["p.yaml:7:19: spec.rules[0].principals: unknown field 'principals'"],
        id="unknown-rule-field",
    ),
    pytest.param(
        {"p.yaml": rule("from: [{principal: [a]}]")},
        ["p.yaml:7:26: spec.rules[0].from[0].principal: unknown field 'principal'"],
        id="unknown-from-field",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{method: [GET]}]")},
        ["p.yaml:7:21: spec.rules[0].to[0].method: unknown field 'method'"],
        id="unknown-to-field",
    ),
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK + "\naudience: [x]"), "ok.yaml": OK_POLICY},
        ["i.yaml:8:13: spec.audience: unknown field 'audience'"],
        id="unknown-issuer-field",
    ),
    pytest.param(
        {
            "i.yaml": issuer(ISSUER_OK + "\nfromHeaders: [{name: x-token, prefx: T}]"),
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:8:40: spec.fromHeaders[0].prefx: unknown field 'prefx'"],
        id="unknown-issuer-header-field",
    ),
    pytest.param(
        {"t.yaml": tenancy("target: [{header: x}]\nplatformroles: [a]"), "ok.yaml": OK_POLICY},
        ["t.yaml:6:18: spec.platformroles: unknown field 'platformroles'"],
        id="unknown-tenancy-field",
    ),
    # --- missing required fields -------------------------------------------------
    pytest.param(
        {"p.yaml": OK_POLICY.replace("kind: Policy\n", "")},
        ["p.yaml:1:1: missing required field 'kind'"],
        id="missing-kind",
    ),
    pytest.param(
        {"p.yaml": OK_POLICY.replace("apiVersion: authz/v1\n", "")},
        ["p.yaml:1:1: missing required field 'apiVersion'"],
        id="missing-apiVersion",
    ),
    pytest.param(
        {"p.yaml": OK_POLICY.replace("metadata: {name: ok}\n", "")},
        ["p.yaml:1:1: missing required field 'metadata'"],
        id="missing-metadata",
    ),
    pytest.param(
        {"p.yaml": "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: p}\n"},
        ["p.yaml:1:1: missing required field 'spec'"],
        id="missing-spec",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "hosts: [a.example]")},
        ["p.yaml:5:3: spec: missing required field 'rules'"],
        id="missing-rules",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "rules:\n  - action: DENY")},
        ["p.yaml:6:7: spec.rules[0]: missing required field 'name'"],
        id="missing-rule-name",
    ),
    pytest.param(
        {"i.yaml": issuer("audiences: [a]\njwksFile: keys/jwks.json"), "ok.yaml": OK_POLICY},
        ["i.yaml:5:3: spec: missing required field 'issuer'"],
        id="missing-issuer-url",
    ),
    pytest.param(
        {"i.yaml": issuer("issuer: https://i\njwksFile: keys/jwks.json"), "ok.yaml": OK_POLICY},
        ["i.yaml:5:3: spec: missing required field 'audiences'"],
        id="missing-issuer-audiences",
    ),
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK, name="idp").replace("{name: idp}", "{}")},
        ["i.yaml:3:11: metadata: missing required field 'name'"],
        id="missing-issuer-name",
    ),
    pytest.param(
        {"t.yaml": tenancy("platformRoles: [a]"), "ok.yaml": OK_POLICY},
        ["t.yaml:5:3: spec: missing required field 'target'"],
        id="missing-tenancy-target",
    ),
    pytest.param(
        {
            "p.yaml": doc("Policy", "rules: [{name: r}]", meta="{tenant: acme}"),
            "ok.yaml": OK_POLICY,
        },
        ["p.yaml:3:11: metadata: missing required field 'name'"],
        id="missing-policy-name",
    ),
    pytest.param(
        {
            "p.yaml": doc("Policy", "rules: [{name: r, action: DENY}]", meta="{name: 5}"),
            "ok.yaml": OK_POLICY,
        },
        ["p.yaml:3:18: metadata.name: must be a string, got int"],
        id="policy-name-not-a-string",
    ),
    pytest.param(
        {
            "p.yaml": doc("Policy", "rules: [{name: r, action: DENY}]", meta="{name: 2026-11-28}"),
            "ok.yaml": OK_POLICY,
        },
        ["p.yaml:3:18: metadata.name: must be a string"],
        id="policy-name-read-as-a-yaml-date",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "rules: [{name: r}]", meta="[p]"), "ok.yaml": OK_POLICY},
        ["p.yaml:3:11: metadata: must be a mapping, got a list"],
        id="policy-metadata-not-a-mapping",
    ),
    # --- wrong types and empty lists ---------------------------------------------
    pytest.param(
        {"p.yaml": "- a\n"},
        ["p.yaml:1:1: must be a mapping, got a list"],
        id="document-not-a-mapping",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "- rules")},
        ["p.yaml:5:3: spec: must be a mapping, got a list"],
        id="spec-not-a-mapping",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "rules: {name: r}")},
        ["p.yaml:5:10: spec.rules: must be a list, got a mapping"],
        id="rules-not-a-list",
    ),
    pytest.param(
        {"p.yaml": rule("dryRun: 'yes'")},
        ["p.yaml:7:15: spec.rules[0].dryRun: must be true or false, got a string"],
        id="dryRun-not-a-boolean",
    ),
    pytest.param(
        {"p.yaml": rule("from: [{principals: a}]")},
        ["p.yaml:7:27: spec.rules[0].from[0].principals: must be a list of strings, got a string"],
        id="principals-not-a-list",
    ),
    pytest.param(
        {"p.yaml": rule("from: [{principals: [1]}]")},
        ["p.yaml:7:28: spec.rules[0].from[0].principals[0]: must be a string, got int"],
        id="principal-not-a-string",
    ),
    pytest.param(
        {"p.yaml": rule("from: [{authenticated: 'true'}]")},
        ["p.yaml:7:30: spec.rules[0].from[0].authenticated: must be true or false"],
        id="authenticated-not-a-boolean",
    ),
    pytest.param(
        {"p.yaml": rule("when: 42")},
        ["p.yaml:7:13: spec.rules[0].when: must be a string, got int"],
        id="when-not-a-string",
    ),
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK + "\nleewaySeconds: soon"), "ok.yaml": OK_POLICY},
        ["i.yaml:8:18: spec.leewaySeconds: must be an integer, got a string"],
        id="leeway-not-an-integer",
    ),
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK + "\nleewaySeconds: 9999"), "ok.yaml": OK_POLICY},
        ["i.yaml:8:18: spec.leewaySeconds: must be between 0 and 600"],
        id="leeway-out-of-range",
    ),
    pytest.param(
        {"p.yaml": rule("action: [DENY]")},
        ["p.yaml:7:15: spec.rules[0].action: must be a string, got a list"],
        id="action-not-a-string",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "rules: [{name: r, 1: x}]")},
        ["p.yaml:5:11: spec.rules[0]: mapping key 1 must be a string"],
        id="non-string-key",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "rules: []")},
        ["p.yaml:5:10: spec.rules: must not be an empty list"],
        id="empty-rules",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "hosts: []\nrules: [{name: r}]")},
        ["p.yaml:5:10: spec.hosts: must not be an empty list"],
        id="empty-hosts",
    ),
    pytest.param(
        {"p.yaml": rule("from: []")},
        ["p.yaml:7:13: spec.rules[0].from: must not be an empty list"],
        id="empty-from",
    ),
    pytest.param(
        {"p.yaml": rule("to: []")},
        ["p.yaml:7:11: spec.rules[0].to: must not be an empty list"],
        id="empty-to",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{methods: []}]")},
        ["p.yaml:7:22: spec.rules[0].to[0].methods: must not be an empty list"],
        id="empty-methods",
    ),
    pytest.param(
        {"p.yaml": rule("from: [{}]")},
        ["p.yaml:7:14: spec.rules[0].from[0]: an empty entry matches everything"],
        id="empty-from-entry",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{}]")},
        ["p.yaml:7:12: spec.rules[0].to[0]: an empty entry matches everything"],
        id="empty-to-entry",
    ),
    pytest.param(
        {"p.yaml": rule("from: [{roles: ['']}]")},
        ["p.yaml:7:23: spec.rules[0].from[0].roles[0]: must not be empty"],
        id="empty-string",
    ),
    pytest.param(
        {"t.yaml": tenancy("target: []"), "ok.yaml": OK_POLICY},
        ["t.yaml:5:11: spec.target: must not be an empty list"],
        id="empty-tenancy-target",
    ),
    # --- YAML itself ----------------------------------------------------------------
    pytest.param(
        {"p.yaml": rule("action: DENY\naction: ALLOW")},
        ["p.yaml:8:7: spec.rules[0].action: duplicate key 'action'"],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        {"p.yaml": "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: p\nspec: {}\n"},
        ["p.yaml:4:5: YAML syntax error: did not find expected ',' or '}'"],
        id="yaml-syntax-error",
    ),
    pytest.param(
        {"p.yaml": OK_POLICY, "q.yaml": "kind: [Policy\n"},
        ["q.yaml:2:1: YAML syntax error: did not find expected ',' or ']'"],
        id="yaml-syntax-error-at-end",
    ),
    # --- names --------------------------------------------------------------------
    pytest.param(
        {"a.yaml": OK_POLICY, "sub/b.yaml": OK_POLICY},
        ["sub/b.yaml:3:18: metadata.name: duplicate Policy name 'ok' (also in a.yaml)"],
        id="duplicate-policy-across-files",
    ),
    pytest.param(
        {"a.yaml": OK_POLICY + "---\n" + OK_POLICY},
        ["a.yaml:9:18: metadata.name: duplicate Policy name 'ok' (also in a.yaml)"],
        id="duplicate-policy-in-one-file",
    ),
    pytest.param(
        {"p.yaml": doc("Policy", "rules:\n  - name: r\n  - name: s\n  - name: r")},
        ["p.yaml:8:13: spec.rules[2].name: duplicate rule name 'r' in this policy"],
        id="duplicate-rule-name",
    ),
    pytest.param(
        {"p.yaml": OK_POLICY.replace("{name: ok}", "{name: Payments}")},
        ["p.yaml:3:18: metadata.name: must be lower-case letters, digits"],
        id="bad-policy-name",
    ),
    pytest.param(
        {"p.yaml": OK_POLICY.replace("{name: ok}", "{name: ok, tenant: Acme}")},
        ["p.yaml:3:30: metadata.tenant: must be lower-case letters, digits"],
        id="bad-tenant-name",
    ),
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK, name="IdP"), "ok.yaml": OK_POLICY},
        ["i.yaml:3:18: metadata.name: must be lower-case letters, digits"],
        id="bad-issuer-name",
    ),
    # --- rules ------------------------------------------------------------------------
    pytest.param(
        {"p.yaml": rule("action: deny")},
        ["p.yaml:7:15: spec.rules[0].action: must be ALLOW, DENY or AUDIT"],
        id="bad-action",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{methods: [GET, post]}]")},
        ["p.yaml:7:28: spec.rules[0].to[0].methods[1]: methods are upper case: use 'POST'"],
        id="lower-case-method",
    ),
    pytest.param(
        {"p.yaml": rule("from: [{notPrincipals: ['*/ns/x/*']}]")},
        ["p.yaml:7:31: spec.rules[0].from[0].notPrincipals[0]: '*' may only be the whole value"],
        id="star-in-the-middle-of-a-pattern",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{paths: ['/a/*/b']}]")},
        ["p.yaml:7:21: spec.rules[0].to[0].paths[0]: '*' may only be the whole value"],
        id="star-in-the-middle-of-a-path",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{notMethods: [Delete]}]")},
        ["p.yaml:7:26: spec.rules[0].to[0].notMethods[0]: methods are upper case: use 'DELETE'"],
        id="lower-case-not-method",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{paths: ['/a/{**}/b']}]")},
        ["p.yaml:7:21: spec.rules[0].to[0].paths[0]: {**} may only be the last segment"],
        id="double-star-not-last",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{paths: ['/a/x{*}']}]")},
        ["p.yaml:7:21: spec.rules[0].to[0].paths[0]: segment 'x{*}': {*} and {**} must be whole"],
        id="star-template-mid-segment",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{notPaths: ['/a/{**}x']}]")},
        ["p.yaml:7:24: spec.rules[0].to[0].notPaths[0]: segment '{**}x'"],
        id="double-star-template-mid-segment",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{paths: ['/a/*/{*}']}]")},
        ["p.yaml:7:21: spec.rules[0].to[0].paths[0]: '*' cannot be combined with {*} or {**}"],
        id="star-mixed-with-template",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{paths: ['/api*/{**}']}]")},
        ["p.yaml:7:21: spec.rules[0].to[0].paths[0]: '*' cannot be combined with {*} or {**}"],
        id="prefix-star-mixed-with-template",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{paths: ['/a/{id}']}]")},
        ["p.yaml:7:21: spec.rules[0].to[0].paths[0]: segment '{id}'"],
        id="unknown-template",
    ),
    pytest.param(
        {"p.yaml": rule("to: [{paths: ['api/v1']}]")},
        ["p.yaml:7:21: spec.rules[0].to[0].paths[0]: a path must start with '/'"],
        id="relative-path",
    ),
    # --- CEL ---------------------------------------------------------------------------
    pytest.param(
        {"p.yaml": rule("when: 'request.method =='")},
        ["p.yaml:7:13: spec.rules[0].when: CEL 1:18: Syntax error"],
        id="cel-syntax-error",
    ),
    pytest.param(
        {"p.yaml": rule("when: 'user == \"x\"'")},
        ["p.yaml:7:13: spec.rules[0].when: CEL 1:1: undeclared reference to 'user'"],
        id="cel-unknown-variable",
    ),
    pytest.param(
        {"p.yaml": rule('when: \'request.method == "GET" && request.verb == "x"\'')},
        ["p.yaml:7:13: spec.rules[0].when: CEL 1:35: undeclared reference to 'request.verb'"],
        id="cel-unknown-field",
    ),
    pytest.param(
        {"p.yaml": rule("when: |\n  request.method == 'GET' &&\n    source.pod == 'x'")},
        ["p.yaml:7:13: spec.rules[0].when: CEL 2:9: undeclared reference to 'source.pod'"],
        id="cel-error-on-second-line",
    ),
    pytest.param(
        {"p.yaml": rule("when: 'request.headers[\"x-n\"]'")},
        ["p.yaml:7:13: spec.rules[0].when: CEL 1:1: 'when' must be a bool expression"],
        id="cel-string-result",
    ),
    pytest.param(
        {"p.yaml": rule("when: 'source.port + 1'")},
        [
            "p.yaml:7:13: spec.rules[0].when: CEL 1:1: 'when' must be a bool expression, "
            "this one is int"
        ],
        id="cel-int-result",
    ),
    # --- issuers ------------------------------------------------------------------------
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK + "\nalgorithms: [none]"), "ok.yaml": OK_POLICY},
        ["i.yaml:8:16: spec.algorithms[0]: algorithm 'none' is not allowed"],
        id="algorithm-none",
    ),
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK + "\nalgorithms: [ES256, HS256]"), "ok.yaml": OK_POLICY},
        ["i.yaml:8:23: spec.algorithms[1]: algorithm 'HS256' is not allowed"],
        id="algorithm-HS256",
    ),
    pytest.param(
        {"i.yaml": issuer("issuer: https://i\naudiences: [a]"), "ok.yaml": OK_POLICY},
        ["i.yaml:5:3: spec: needs exactly one of jwksUri, jwksFile, jwks, discovery: true"],
        id="no-key-source",
    ),
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK + "\njwksUri: https://i/jwks"), "ok.yaml": OK_POLICY},
        ["i.yaml:5:3: spec: needs exactly one of jwksUri, jwksFile, jwks, discovery: true"],
        id="two-key-sources",
    ),
    pytest.param(
        {"i.yaml": issuer(ISSUER_OK.replace("jwks.json", "nope.json")), "ok.yaml": OK_POLICY},
        ["i.yaml:7:13: spec.jwksFile: cannot read keys/nope.json"],
        id="missing-jwksFile",
    ),
    pytest.param(
        {
            "i.yaml": issuer(ISSUER_OK.replace("jwks.json", "bad.json")),
            "keys/bad.json": "{nope",
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:7:13: spec.jwksFile: keys/bad.json: not JSON"],
        id="jwksFile-not-json",
    ),
    pytest.param(
        {
            "i.yaml": issuer(ISSUER_OK.replace("jwks.json", "bad.json")),
            "keys/bad.json": '{"keys": {}}',
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:7:13: spec.jwksFile: bad JWKS: a JWKS must have a 'keys' list"],
        id="jwksFile-not-a-jwks",
    ),
    pytest.param(
        {
            "i.yaml": issuer(ISSUER_OK.replace("jwks.json", "private.json")),
            "keys/private.json": json.dumps({"keys": [_private_jwk()]}),
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:7:13: spec.jwksFile: bad JWKS: keys[0]: contains private key material (d)"],
        id="jwksFile-with-private-key",
    ),
    pytest.param(
        {
            "i.yaml": issuer(
                "issuer: https://i\naudiences: [a]\njwks: " + json.dumps({"keys": [_private_jwk()]})
            ),
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:7:9: spec.jwks: bad JWKS: keys[0]: contains private key material (d)"],
        id="inline-jwks-with-private-key",
    ),
    pytest.param(
        {
            "i.yaml": issuer("issuer: https://i\naudiences: [a]\njwksUri: http://i/jwks"),
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:7:12: spec.jwksUri: jwksUri must be an https:// URL"],
        id="jwksUri-not-https",
    ),
    pytest.param(
        {
            "i.yaml": issuer("issuer: http://i\naudiences: [a]\ndiscovery: true"),
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:5:11: spec.issuer: discovery needs an https:// issuer URL"],
        id="discovery-not-https",
    ),
    pytest.param(
        {
            "i.yaml": issuer(ISSUER_OK + "\ncaFile: ca.pem"),
            "ca.pem": "-----BEGIN CERTIFICATE-----\n",
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:8:11: spec.caFile: caFile only applies to jwksUri or discovery"],
        id="caFile-with-jwksFile",
    ),
    pytest.param(
        {
            "i.yaml": issuer("issuer: https://i\naudiences: [a]\ndiscovery: true\ncaFile: ca.pem"),
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:8:11: spec.caFile: cannot read ca.pem"],
        id="caFile-missing",
    ),
    pytest.param(
        {
            "i.yaml": issuer("issuer: https://i\naudiences: [a]\ndiscovery: true\ncaFile: ca.pem"),
            "ca.pem": "not a certificate\n",
            "ok.yaml": OK_POLICY,
        },
        ["i.yaml:8:11: spec.caFile: ca.pem: not a PEM CA bundle"],
        id="caFile-not-pem",
    ),
    pytest.param(
        {
            "i.yaml": issuer(ISSUER_OK),
            "j.yaml": issuer(ISSUER_OK.replace("[a]", "[b]"), name="idp2"),
            "ok.yaml": OK_POLICY,
        },
        ["j.yaml:5:11: spec.issuer: issuer 'https://i' is also declared by idp"],
        id="two-issuers-same-url",
    ),
    pytest.param(
        {
            "i.yaml": issuer(ISSUER_OK),
            "j.yaml": issuer(ISSUER_OK.replace("https://i", "https://j")),
            "ok.yaml": OK_POLICY,
        },
        ["j.yaml:3:18: metadata.name: duplicate Issuer name 'idp' (also in i.yaml)"],
        id="two-issuers-same-name",
    ),
    # --- tenancy ------------------------------------------------------------------------
    pytest.param(
        {
            "t.yaml": tenancy("target: [{header: x-a}]"),
            "u.yaml": tenancy("target: [{header: x-b}]", name="u"),
            "ok.yaml": OK_POLICY,
        },
        ["u.yaml:2:7: kind: a bundle holds at most one Tenancy"],
        id="two-tenancies",
    ),
    pytest.param(
        {"t.yaml": tenancy("target: [{}]"), "ok.yaml": OK_POLICY},
        [
            "t.yaml:5:12: spec.target[0]: each target needs exactly one of pathTemplate, host, "
            "header"
        ],
        id="tenancy-target-no-field",
    ),
    pytest.param(
        {
            "t.yaml": tenancy("target: [{header: x, host: '{tenant}.a.example'}]"),
            "ok.yaml": OK_POLICY,
        },
        [
            "t.yaml:5:12: spec.target[0]: each target needs exactly one of pathTemplate, host, "
            "header"
        ],
        id="tenancy-target-two-fields",
    ),
    pytest.param(
        {"t.yaml": tenancy("target: [{pathTemplate: '/v/t-{tenant}/{**}'}]"), "ok.yaml": OK_POLICY},
        ["t.yaml:5:27: spec.target[0].pathTemplate: {tenant} must be one whole path segment"],
        id="tenancy-path-tenant-not-a-segment",
    ),
    pytest.param(
        {"t.yaml": tenancy("target: [{pathTemplate: '/v/{**}'}]"), "ok.yaml": OK_POLICY},
        ["t.yaml:5:27: spec.target[0].pathTemplate: must contain {tenant} exactly once"],
        id="tenancy-path-without-tenant",
    ),
    pytest.param(
        {"t.yaml": tenancy("target: [{host: 'v-{tenant}.a.example'}]"), "ok.yaml": OK_POLICY},
        ["t.yaml:5:19: spec.target[0].host: {tenant} must be one whole DNS label"],
        id="tenancy-host-tenant-not-a-label",
    ),
    pytest.param(
        {"t.yaml": tenancy("target: [{host: '{tenant}.{tenant}.example'}]"), "ok.yaml": OK_POLICY},
        ["t.yaml:5:19: spec.target[0].host: must contain {tenant} exactly once"],
        id="tenancy-host-tenant-twice",
    ),
    # --- whole bundles ----------------------------------------------------------------
    pytest.param({}, ["{root}:1:1: no *.yaml or *.yml files in the bundle"], id="empty-directory"),
    pytest.param(
        {"README.txt": "not yaml"},
        ["{root}:1:1: no *.yaml or *.yml files in the bundle"],
        id="no-yaml-files",
    ),
    pytest.param(
        {"t.yaml": tenancy("target: [{header: x-tenant-id}]")},
        ["{root}:1:1: the bundle has no Policy; it would deny all"],
        id="no-policy",
    ),
    pytest.param(
        {"empty.yaml": "---\n...\n"},
        ["{root}:1:1: the bundle has no Policy; it would deny all"],
        id="only-empty-documents",
    ),
]


@pytest.mark.parametrize(("files", "expected"), CASES)
def test_bundle_errors(
    tmp_path: Path, key: SigningKey, files: dict[str, str], expected: list[str]
) -> None:
    root = write_bundle(tmp_path / "bundle", files, key)
    with pytest.raises(BundleError) as caught:
        load_bundle(root)
    lines = [str(error) for error in caught.value.errors]
    wanted = [line.replace("{root}", str(root)) for line in expected]
    assert len(lines) == len(wanted), lines
    for line, prefix in zip(lines, wanted, strict=True):
        assert line.startswith(prefix), (line, prefix)


MULTI = {
    "b.yaml": rule("action: deny\nto: [{methods: [get]}]"),
    "a.yaml": doc("Policy", "rules: [{name: r, dryRun: 1}]\nhost: [x]"),
    "c.yaml": issuer("issuer: https://i\naudiences: [a]\nalgorithms: [HS256]"),
    "d.yaml": "kind: [\n",
}


def test_all_errors_reported_together_sorted(tmp_path: Path, key: SigningKey) -> None:
    root = write_bundle(tmp_path / "bundle", MULTI, key)
    with pytest.raises(BundleError) as caught:
        load_bundle(root)
    errors = caught.value.errors
    assert [str(error) for error in errors] == [
        "a.yaml:5:29: spec.rules[0].dryRun: must be true or false, got int",
        "a.yaml:6:9: spec.host: unknown field 'host'; expected one of hosts, rules",
        "b.yaml:3:18: metadata.name: duplicate Policy name 'p' (also in a.yaml)",
        "b.yaml:7:15: spec.rules[0].action: must be ALLOW, DENY or AUDIT",
        "b.yaml:8:23: spec.rules[0].to[0].methods[0]: methods are upper case: use 'GET'",
        "c.yaml:5:3: spec: needs exactly one of jwksUri, jwksFile, jwks, discovery: true",
        "c.yaml:7:16: spec.algorithms[0]: algorithm 'HS256' is not allowed; use one of "
        "ES256, ES384, ES512, Ed25519, Ed448, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512",
        "d.yaml:2:1: YAML syntax error: did not find expected node content",
    ]
    assert list(errors) == sorted(errors)
    assert str(caught.value) == f"{len(errors)} bundle error(s)"


def test_policy_error_format() -> None:
    error = PolicyError("p.yaml", 3, 7, "spec.rules[0]", "bad")
    assert str(error) == "p.yaml:3:7: spec.rules[0]: bad"
    assert str(PolicyError("p.yaml", 1, 1, "", "bad")) == "p.yaml:1:1: bad"


@pytest.mark.parametrize("kind", ["Revocations", "Lockdown"], ids=["revocations", "lockdown"])
def test_spec_kinds_load(tmp_path: Path, key: SigningKey, kind: str) -> None:
    """§1 lists Revocations and Lockdown as kinds of a bundle: they must load."""
    body = {
        "Revocations": "tokenIds: [abc]",
        "Lockdown": "tenant: acme\nreason: incident",
    }[kind]
    files = {"ok.yaml": OK_POLICY, "x.yaml": doc(kind, body, "{name: x}")}
    load_bundle(write_bundle(tmp_path / "bundle", files, key))


def test_file_not_utf8(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "bundle", {"ok.yaml": OK_POLICY})
    (root / "latin1.yaml").write_bytes(b"# caf\xe9\n" + OK_POLICY.encode())
    with pytest.raises(BundleError) as caught:
        load_bundle(root)
    assert [str(error) for error in caught.value.errors] == [
        "latin1.yaml:1:1: not UTF-8: invalid continuation byte"
    ]
