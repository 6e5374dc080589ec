"""`authz test`: PolicyTests run through the engine, with coverage, JUnit and JSON reports."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

from authz.identity.tokens import Token, TokenError
from authz.policy.bundle import load_bundle
from authz.policytest import DEFAULT_NOW, ephemeral_keys
from tests.authoring.commands import POLICIES, authz, copy_example

FAILING = """\
apiVersion: authz/v1
kind: PolicyTest
metadata: {name: wishful}
spec:
  cases:
    - name: payments can be deleted after all
      request:
        attributes:
          source: {principal: "spiffe://cluster.local/ns/order/sa/order-service"}
          request:
            http:
              {method: DELETE, path: /api/v1/payments/p-1, host: payment.payment.svc.cluster.local}
      expect: {allowed: true, rule: payments/order-service-charges, audit: [x/y]}
"""

HEALTH_ONLY = """\
apiVersion: authz/v1
kind: PolicyTest
metadata: {name: health-only}
spec:
  cases:
    - name: probes
      request:
        attributes:
          request: {http: {method: GET, path: /healthz, host: api.shop.example.com}}
      expect: {allowed: true, rule: health/probes}
"""


def write(root: Path, relative: str, text: str) -> None:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text))


def test_the_example_bundle_passes_with_every_rule_covered() -> None:
    run = authz("test", str(POLICIES), "--min-coverage", "100")

    assert run.status == 0, run.stdout + run.stderr
    assert "FAIL" not in run.stdout
    assert "coverage: 21/21 rules (100.0%, minimum 100%)" in run.stdout
    assert "not covered" not in run.stdout


def test_the_example_bundle_as_json() -> None:
    run = authz("test", str(POLICIES), "--json")

    report = json.loads(run.stdout)
    assert run.status == 0
    assert report["failed"] == 0 and report["passed"] == len(report["cases"]) > 40
    assert report["coverage"]["percent"] == 100.0
    assert report["coverage"]["uncovered"] == []
    assert report["policy_version"] == load_bundle(POLICIES).version


def test_a_failing_case_shows_expected_against_actual(tmp_path: Path) -> None:
    bundle = copy_example(tmp_path / "bundle")
    write(bundle, "tests/wishful.yaml", FAILING)

    run = authz("test", str(bundle))

    assert run.status == 1
    assert "FAIL  tests/wishful.yaml:6:7  wishful / payments can be deleted after all" in run.stdout
    assert "allowed: expected true, got false" in run.stdout
    assert (
        'rule: expected "payments/order-service-charges", got "payments/never-delete-payments"'
        in run.stdout
    )
    assert 'audit: expected ["x/y"], got [] (missing x/y)' in run.stdout
    assert '"reason": "denied"' in run.stdout  # the whole decision, for context
    assert "1 failed" in run.stdout


def test_junit_report_is_well_formed(tmp_path: Path) -> None:
    bundle = copy_example(tmp_path / "bundle")
    write(bundle, "tests/wishful.yaml", FAILING)
    report = tmp_path / "junit.xml"

    run = authz("test", str(bundle), "--junit-xml", str(report))

    root = ElementTree.parse(report).getroot()  # noqa: S314 - a report we just wrote
    assert run.status == 1
    assert root.tag == "testsuites"
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    wishful = suites["wishful"]
    assert (wishful.get("tests"), wishful.get("failures")) == ("1", "1")
    [case] = wishful.iter("testcase")
    assert case.get("name") == "payments can be deleted after all"
    assert (case.get("file"), case.get("line")) == ("tests/wishful.yaml", "6")
    failure = case.find("failure")
    assert failure is not None and "allowed: expected true" in failure.get("message", "")
    assert suites["storefront"].get("failures") == "0"
    assert root.get("failures") == "1"
    assert int(root.get("tests", "0")) == sum(1 for _ in root.iter("testcase"))


@pytest.mark.parametrize(
    ("minimum", "status"),
    [(None, 0), ("4", 0), ("5", 1), ("100", 1)],
    ids=["no-minimum", "met", "just-missed", "full"],
)
def test_coverage_threshold(tmp_path: Path, minimum: str | None, status: int) -> None:
    bundle = copy_example(tmp_path / "bundle", tests=False)
    write(bundle, "tests/health.yaml", HEALTH_ONLY)
    junit = tmp_path / "junit.xml"
    extra = ["--min-coverage", minimum] if minimum else []

    run = authz("test", str(bundle), "--junit-xml", str(junit), *extra)

    assert run.status == status, run.stdout
    assert "coverage: 1/21 rules (4.8%" in run.stdout
    assert "not covered: customers/place-order  (platform/customers.yaml:9:7)" in run.stdout
    assert "not covered: health/probes" not in run.stdout
    suites = ElementTree.parse(junit).getroot()  # noqa: S314 - a report we just wrote
    [coverage] = [suite for suite in suites if suite.get("name") == "rule coverage"]
    assert coverage.get("failures") == str(status)


def test_coverage_counts_audit_and_would_match(tmp_path: Path) -> None:
    bundle = copy_example(tmp_path / "bundle", tests=False)
    write(
        bundle,
        "tests/admin.yaml",
        """\
        apiVersion: authz/v1
        kind: PolicyTest
        metadata: {name: admin}
        spec:
          cases:
            - name: a write without a ticket
              request:
                attributes:
                  request: {http: {method: PUT, path: /api/v1/vendors/acme/items/1, host: h}}
              token: {claims: {sub: ops, roles: ["platform:admin"], tenant: platform}}
              expect: {allowed: true}
        """,
    )

    report = json.loads(authz("test", str(bundle), "--json").stdout)

    assert report["coverage"]["covered"] == [
        "platform-admin/audit-admin-actions",
        "platform-admin/operate-vendors",
        "platform-admin/require-change-ticket",
    ]


@pytest.mark.parametrize(
    ("case", "error"),
    [
        (
            "{name: a, request: {}, expect: {allowd: true}}",
            "tests/t.yaml:7:47: spec.cases[0].expect.allowd: unknown field 'allowd'",
        ),
        (
            "{name: a, request: {}, expect: {allowed: true}, tokn: {}}",
            "tests/t.yaml:7:61: spec.cases[0].tokn: unknown field 'tokn'",
        ),
        (
            "{name: a, request: {atributes: {}}, expect: {allowed: true}}",
            "spec.cases[0].request.atributes: not a CheckRequest: unknown field 'atributes'",
        ),
        (
            "{name: a, request: {}, expect: {reason: allowd}}",
            "spec.cases[0].expect.reason: must be one of allowed, bad_path",
        ),
        (
            "{name: a, request: {}, expect: {}}",
            "spec.cases[0].expect: expects nothing",
        ),
        (
            "{name: a, request: {}, token: {claims: {}, issuer: nope}, expect: {allowed: true}}",
            "spec.cases[0].token.issuer: no Issuer named 'nope' (by name or URL); have shop-idp",
        ),
        (
            "{name: a, request: {}, token: {claims: {sub: x}}, expect: {allowed: true}}",
            "spec.cases[0].token: a token needs an HTTP request",
        ),
        (
            "{request: {}, expect: {allowed: true}}",
            "tests/t.yaml:7:7: spec.cases[0]: missing required field 'name'",
        ),
    ],
    ids=[
        "expect-typo",
        "case-typo",
        "request-typo",
        "unknown-reason",
        "empty-expect",
        "unknown-issuer",
        "token-without-http",
        "no-name",
    ],
)
def test_test_documents_are_checked_strictly(tmp_path: Path, case: str, error: str) -> None:
    bundle = copy_example(tmp_path / "bundle", tests=False)
    head = "apiVersion: authz/v1\nkind: PolicyTest\nmetadata: {name: t}\nspec:\n"
    write(bundle, "tests/t.yaml", f"{head}  now: '2026-06-01T12:00:00Z'\n  cases:\n    - {case}\n")

    run = authz("test", str(bundle))

    assert run.status == 2
    assert error in run.stderr
    assert run.stdout == ""


def test_a_broken_bundle_is_exit_2_with_positions(tmp_path: Path) -> None:
    bundle = copy_example(tmp_path / "bundle")
    write(
        bundle,
        "tests/broken.yaml",
        "apiVersion: authz/v1\nkind: PolicyTest\nmetadata: {name: b}\nspec: {}\n",
    )

    run = authz("test", str(bundle))

    assert run.status == 2
    assert "tests/broken.yaml:4:7: spec: missing required field 'cases'" in run.stderr


def test_a_bundle_without_tests_is_exit_2(tmp_path: Path) -> None:
    run = authz("test", str(copy_example(tmp_path / "bundle", tests=False)))

    assert run.status == 2
    assert "no PolicyTest documents" in run.stderr


def test_now_defaults_to_a_fixed_time() -> None:
    assert DEFAULT_NOW.isoformat() == "2026-01-01T00:00:00+00:00"


SECOND_ISSUER = """\
apiVersion: authz/v1
kind: Issuer
metadata: {name: partner-idp}
spec:
  issuer: https://idp.partner.example.com
  audiences: [partner-api]
  jwksUri: https://idp.partner.example.com/jwks
  algorithms: [RS256]
  rolesClaim: groups
"""

PARTNER_POLICY = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: partner}
spec:
  rules:
    - name: partners-read
      from: [{requestPrincipals: ["https://idp.partner.example.com/*"], roles: [reader]}]
      to: [{methods: [GET], paths: ["/partner/*"]}]
"""


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        ("{claims: {sub: p1, groups: [reader]}, issuer: partner-idp}", 0, "1 passed"),
        ("{claims: {sub: p1, groups: [reader]}, issuer: 'https://idp.partner.example.com'}", 0, ""),
        ("{claims: {sub: p1, groups: [reader]}}", 2, "the bundle has 2 Issuers; name one"),
    ],
    ids=["by-name", "by-url", "ambiguous"],
)
def test_tokens_are_signed_for_the_named_issuer(
    tmp_path: Path, token: str, status: int, message: str
) -> None:
    # partner-idp fetches its keys (jwksUri) and accepts RS256 only: the run needs neither.
    bundle = copy_example(tmp_path / "bundle", tests=False)
    write(bundle, "partner/issuer.yaml", SECOND_ISSUER)
    write(bundle, "partner/policy.yaml", PARTNER_POLICY)
    case = (
        "{name: partner reads, token: TOKEN, expect: {allowed: true, rule: partner/partners-read},"
        " request: {attributes: {request: {http: {method: GET, path: /partner/x, host: h}}}}}"
    ).replace("TOKEN", token)
    head = "apiVersion: authz/v1\nkind: PolicyTest\nmetadata: {name: t}\nspec:\n  cases:\n"
    write(bundle, "tests/t.yaml", f"{head}    - {case}\n")

    run = authz("test", str(bundle))

    assert run.status == status, run.stdout + run.stderr
    assert message in run.stdout + run.stderr


def test_ephemeral_keys_replace_the_bundle_keys() -> None:
    snapshot = load_bundle(POLICIES)

    keys = ephemeral_keys(snapshot)

    [original], [replaced] = snapshot.issuers, keys.snapshot.issuers
    assert replaced.keys != original.keys
    assert (replaced.issuer, replaced.audiences) == (original.issuer, original.audiences)
    claims = {"iss": original.issuer, "aud": "shop-api", "sub": "u", "exp": 2**31}
    token = keys.sign(replaced, claims)
    assert isinstance(keys.snapshot.tokens.verify(token, 0), Token)
    assert isinstance(snapshot.tokens.verify(token, 0), TokenError)
