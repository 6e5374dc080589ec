"""PolicyTest: the test cases a bundle carries (spec §7), run through the real engine.

A case is a CheckRequest (proto3 JSON), an optional token and the expected
decision. Tokens are signed by *ephemeral* keys: the runner generates one key
per Issuer in memory and decides against a copy of the snapshot that trusts
those keys only, so a bundle's real (or fetched) keys are never needed and no
private key ever touches the disk. Time is fixed by ``spec.now`` (default
:data:`DEFAULT_NOW`), never read from the clock, so a run gives the same
answers on every machine and every day.

Test documents are validated as strictly as policies: an unknown field is an
error at ``file:line:column``, because a misspelt ``expect`` field that is
silently ignored would make a test pass that checks nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import jwt
from google.protobuf import json_format

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.decision import Reason
from authz.engine import decide
from authz.errors import PolicyError
from authz.identity.keys import KeySet
from authz.identity.minting import jwks_for, new_private_key
from authz.identity.tokens import Issuer, TokenVerifier, header_sources
from authz.policy.bundle import Snapshot
from authz.policy.reader import Reader
from authz.policy.source import Document, Path
from authz.request import from_check_request

__all__ = [
    "DEFAULT_NOW",
    "EXPECT_FIELDS",
    "Case",
    "CaseResult",
    "CaseToken",
    "EphemeralKeys",
    "Mismatch",
    "PolicyTest",
    "Report",
    "case_request",
    "compile_tests",
    "ephemeral_keys",
    "rule_positions",
    "run_case",
    "run_tests",
]

#: The evaluation time of a PolicyTest without ``spec.now``: fixed, never the wall clock.
DEFAULT_NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXPECT_FIELDS = ("allowed", "status", "reason", "rule", "tenant", "would_match", "audit")
TOKEN_TTL_SECONDS = 3600  # `exp` of a test token that does not set it: now + 1 h
TEST_KID = "policytest"
# Cheap to generate first; RSA only when an issuer accepts nothing else.
_SIGNING_ALGORITHMS = ("ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256")
_CASE_FIELDS = ("name", "request", "token", "expect")
_REASONS = tuple(reason.value for reason in Reason)


def _rule_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_EXPECT_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "allowed": (lambda v: isinstance(v, bool), "true or false"),
    "status": (lambda v: type(v) is int and 100 <= v <= 599, "an HTTP status, e.g. 403"),
    "reason": (lambda v: v in _REASONS, "one of " + ", ".join(_REASONS)),
    "rule": (lambda v: v is None or (isinstance(v, str) and "/" in v), "'<policy>/<rule>' or null"),
    "tenant": (lambda v: isinstance(v, str), "a string ('' for none)"),
    "would_match": (_rule_ids, "a list of rule ids"),
    "audit": (_rule_ids, "a list of rule ids"),
}


@dataclass(frozen=True, slots=True)
class CaseToken:
    """A case's token: claims (completed when the case runs) and the Issuer that signs it."""

    claims: dict[str, Any]
    issuer: Issuer


@dataclass(frozen=True, slots=True)
class Case:
    """One test case, with where it is written."""

    name: str
    where: str  # file:line:column
    request: Any  # an envoy.service.auth.v3.CheckRequest
    token: CaseToken | None
    expect: dict[str, Any]  # only the fields the author wrote


@dataclass(frozen=True, slots=True)
class PolicyTest:
    """One ``kind: PolicyTest`` document."""

    name: str
    file: str
    now: datetime
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One expected field that the decision does not have."""

    field: str
    expected: Any
    actual: Any


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What one case decided, and how it differs from what was expected."""

    test: PolicyTest
    case: Case
    actual: dict[str, Any]  # the decision as data (spec §8), without id and version
    detail: str  # the decision's log detail (why a token or path was refused)
    mismatches: tuple[Mismatch, ...]

    @property
    def passed(self) -> bool:
        """Every expected field matched."""
        return not self.mismatches


@dataclass(frozen=True, slots=True)
class Report:
    """The results of a run and the rule coverage they reach."""

    policy_version: str
    results: tuple[CaseResult, ...]
    rules: tuple[str, ...]  # every rule id of the bundle, in bundle order
    covered: frozenset[str]
    positions: Mapping[str, str] = field(default_factory=dict)  # rule id -> file:line:col

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        """The cases that did not pass."""
        return tuple(result for result in self.results if not result.passed)

    @property
    def uncovered(self) -> tuple[str, ...]:
        """Rules that no case reached, in bundle order."""
        return tuple(rule for rule in self.rules if rule not in self.covered)

    @property
    def coverage(self) -> float:
        """Covered rules as a percentage (100 for a bundle without rules)."""
        if not self.rules:
            return 100.0
        return 100.0 * (len(self.rules) - len(self.uncovered)) / len(self.rules)


# --- reading --------------------------------------------------------------------------


def rule_positions(documents: Sequence[Document]) -> dict[str, str]:
    """``<policy>/<rule>`` -> ``file:line:column`` of each rule of the Policy documents."""
    positions: dict[str, str] = {}
    for document in _of_kind(documents, "Policy"):
        policy = document.value["metadata"]["name"]
        for index, rule in enumerate(document.value["spec"]["rules"]):
            line, column = document.positions[("spec", "rules", index)]
            positions[f"{policy}/{rule['name']}"] = f"{document.file}:{line}:{column}"
    return positions


def compile_tests(
    documents: Sequence[Document], issuers: Sequence[Issuer]
) -> tuple[list[PolicyTest], list[PolicyError]]:
    """The PolicyTest documents of a bundle that loaded, checked strictly."""
    errors: list[PolicyError] = []
    tests = [_test(document, issuers, errors) for document in _of_kind(documents, "PolicyTest")]
    return [test for test in tests if test is not None], sorted(errors)


def _of_kind(documents: Sequence[Document], kind: str) -> list[Document]:
    # The bundle loaded, so every document has a valid envelope.
    return [d for d in documents if isinstance(d.value, dict) and d.value.get("kind") == kind]


def _where(document: Document, path: Path) -> str:
    line, column = document.positions.get(path, (1, 1))
    return f"{document.file}:{line}:{column}"


def _test(
    document: Document, issuers: Sequence[Issuer], errors: list[PolicyError]
) -> PolicyTest | None:
    before = len(errors)
    reader = Reader(document, errors)
    spec = document.value["spec"]
    now = _time(reader, ("spec", "now")) if "now" in spec else DEFAULT_NOW
    cases: list[Case] = []
    names: dict[str, str] = {}
    for index in reader.items(("spec", "cases")):
        path: Path = ("spec", "cases", index)
        case = _case(reader, path, issuers)
        if case is None:
            continue
        if case.name in names:
            reader.error(
                (*path, "name"), f"duplicate case name {case.name!r} (also at {names[case.name]})"
            )
        names.setdefault(case.name, case.where)
        cases.append(case)
    if len(errors) > before or now is None:
        return None
    return PolicyTest(document.value["metadata"]["name"], document.file, now, tuple(cases))


def _time(reader: Reader, path: Path) -> datetime | None:
    value = reader.value(path)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            value = None
    if not isinstance(value, datetime) or value.tzinfo is None:
        reader.error(path, "must be an RFC 3339 time with a time zone, e.g. 2026-06-01T12:00:00Z")
        return None
    return value


def _case(reader: Reader, path: Path, issuers: Sequence[Issuer]) -> Case | None:
    before = len(reader.errors)
    spec = reader.mapping(path, _CASE_FIELDS, ("name", "request", "expect"))
    if spec is None:
        return None
    name = reader.string((*path, "name")) if "name" in spec else None
    request = _request(reader, (*path, "request")) if "request" in spec else None
    token = _token(reader, (*path, "token"), issuers) if "token" in spec else None
    if token is not None and request is not None:
        _check_token_header(reader, path, request, token.issuer)
    expect = _expect(reader, (*path, "expect")) if "expect" in spec else None
    if len(reader.errors) > before or name is None or request is None or expect is None:
        return None
    return Case(name, _where(reader.document, path), request, token, expect)


def _request(reader: Reader, path: Path) -> Any:
    value = reader.value(path)
    if not isinstance(value, dict):
        reader.error(path, "must be a mapping: a CheckRequest in proto3 JSON")
        return None
    try:
        return json_format.ParseDict(_jsonable(value), external_auth_pb2.CheckRequest())
    except json_format.ParseError as exc:
        where, message = _parse_problem(value, str(exc))
        reader.error((*path, *where), f"not a CheckRequest: {message}")
        return None


def _jsonable(value: Any) -> Any:
    """YAML's values as JSON's: unquoted timestamps become RFC 3339 strings."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


_FIELD = re.compile(r'Failed to parse (\w+) field: |has no field named "(\w+)"')
_AVAILABLE = re.compile(r"Available Fields\(except extensions\): \"\[(.*?)\]\"")


def _parse_problem(value: Any, message: str) -> tuple[Path, str]:
    """Where in ``value`` protobuf's ParseError points, and its message without the chain."""
    where: list[str | int] = []
    for match in _FIELD.finditer(message):
        key = match.group(1) or match.group(2)
        if not isinstance(value, dict) or key not in value:
            break
        where.append(key)
        value = value[key]
    problem = re.sub(r"(Failed to parse \w+ field: )+", "", message).split("\n", 1)[0]
    unknown = re.search(r'has no field named "(\w+)"', problem)
    if unknown:
        problem = f"unknown field {unknown.group(1)!r}"
        available = _AVAILABLE.search(message)
        if available:
            problem += "; expected one of " + available.group(1).replace("'", "")
    return tuple(where), problem.rstrip(".").strip()


def _token(reader: Reader, path: Path, issuers: Sequence[Issuer]) -> CaseToken | None:
    spec = reader.mapping(path, ("claims", "issuer"), ("claims",))
    if spec is None or "claims" not in spec:
        return None
    claims = reader.value((*path, "claims"))
    if not isinstance(claims, dict):
        reader.error((*path, "claims"), "must be a mapping of claims")
        return None
    issuer = _issuer(reader, path, spec, issuers)
    if issuer is None:
        return None
    if not any(alg in issuer.algorithms for alg in _SIGNING_ALGORITHMS):
        reader.error(path, f"issuer {issuer.name} accepts no algorithm the test runner can sign")
        return None
    return CaseToken(_claims(claims), issuer)


def _issuer(
    reader: Reader, path: Path, spec: dict[str, Any], issuers: Sequence[Issuer]
) -> Issuer | None:
    if "issuer" not in spec:
        if len(issuers) == 1:
            return issuers[0]
        count = "no Issuer" if not issuers else f"{len(issuers)} Issuers"
        reader.error(path, f"the bundle has {count}; name one with `issuer:`")
        return None
    wanted = reader.string((*path, "issuer"))
    for issuer in issuers:
        if wanted in (issuer.name, issuer.issuer):
            return issuer
    if wanted is not None:
        known = ", ".join(sorted(issuer.name for issuer in issuers)) or "none"
        reader.error(
            (*path, "issuer"), f"no Issuer named {wanted!r} (by name or URL); have {known}"
        )
    return None


def _claims(claims: dict[str, Any]) -> dict[str, Any]:
    """JSON claims; unquoted YAML times in exp/nbf/iat become NumericDates."""
    out = {}
    for name, value in claims.items():
        if name in ("exp", "nbf", "iat") and isinstance(value, datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=UTC)
            out[name] = int(aware.timestamp())
        else:
            out[name] = _jsonable(value)
    return out


def _check_token_header(reader: Reader, path: Path, request: Any, issuer: Issuer) -> None:
    """A token needs an HTTP request without a token header of its own."""
    if not request.attributes.request.HasField("http"):
        reader.error((*path, "token"), "a token needs an HTTP request (attributes.request.http)")
        return
    http = request.attributes.request.http
    name = _token_header(issuer)[0]
    present = {key.lower() for key in http.headers}
    present.update(header.key.lower() for header in http.header_map.headers)
    if name in present:
        reader.error((*path, "token"), f"the request already sets {name!r}; drop it or the token")


def _token_header(issuer: Issuer) -> tuple[str, str]:
    source = issuer.from_headers[0] if issuer.from_headers else None
    return (source.name, source.prefix) if source else ("authorization", "Bearer ")


def _expect(reader: Reader, path: Path) -> dict[str, Any] | None:
    spec = reader.mapping(path, EXPECT_FIELDS)
    if spec is None:
        return None
    if not spec:
        reader.error(path, "expects nothing; name at least one of " + ", ".join(EXPECT_FIELDS))
    for name, value in spec.items():
        check, wanted = _EXPECT_TYPES.get(name, (None, ""))
        if check is not None and not check(value):
            reader.error((*path, name), f"must be {wanted}")
    return spec


# --- running --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EphemeralKeys:
    """A snapshot whose issuers trust in-memory keys only, and the means to sign with them."""

    snapshot: Snapshot
    signers: Mapping[str, tuple[Any, str]]  # issuer URL -> (private key, alg)

    def sign(self, issuer: Issuer, claims: Mapping[str, Any]) -> str:
        """A compact JWT over ``claims`` with the issuer's ephemeral key."""
        key, alg = self.signers[issuer.issuer]
        return jwt.encode(dict(claims), key, algorithm=alg, headers={"kid": TEST_KID})


def ephemeral_keys(snapshot: Snapshot) -> EphemeralKeys:
    """``snapshot`` with every Issuer's keys replaced by a fresh in-memory key."""
    issuers: list[Issuer] = []
    signers: dict[str, tuple[Any, str]] = {}
    for issuer in snapshot.issuers:
        alg = next((alg for alg in _SIGNING_ALGORITHMS if alg in issuer.algorithms), None)
        keys = KeySet.EMPTY
        if alg is not None:
            private_key = new_private_key(alg)
            keys = KeySet.from_jwks(jwks_for(private_key, TEST_KID, alg))
            signers[issuer.issuer] = (private_key, alg)
        issuers.append(replace(issuer, keys=keys))
    trusting = replace(
        snapshot,
        issuers=tuple(issuers),
        token_sources=header_sources(issuers),
        tokens=TokenVerifier(issuers),
    )
    return EphemeralKeys(trusting, signers)


def run_tests(
    snapshot: Snapshot, tests: Sequence[PolicyTest], positions: Mapping[str, str] | None = None
) -> Report:
    """Run every case against ``snapshot`` (with ephemeral keys) and measure rule coverage."""
    keys = ephemeral_keys(snapshot)
    results = [run_case(keys, test, case) for test in tests for case in test.cases]
    covered: set[str] = set()
    for result in results:
        actual = result.actual
        covered.update(actual["audit"], actual["would_match"])
        if actual["rule"] is not None:
            covered.add(actual["rule"])
    return Report(
        snapshot.version,
        tuple(results),
        tuple(rule.id for rule in snapshot.rules.rules),
        frozenset(covered),
        dict(positions or {}),
    )


def run_case(keys: EphemeralKeys, test: PolicyTest, case: Case) -> CaseResult:
    """Decide one case with ``decide`` and compare the expected fields."""
    attributes = from_check_request(case_request(keys, case, test.now))
    decision = decide(keys.snapshot, attributes, test.now)
    actual = decision.as_json("", keys.snapshot.version)
    del actual["decision_id"], actual["policy_version"]
    return CaseResult(test, case, actual, decision.detail, _compare(case.expect, actual))


def case_request(keys: EphemeralKeys, case: Case, now: datetime) -> Any:
    """The case's CheckRequest, carrying its token (signed now) where its Issuer looks."""
    message = external_auth_pb2.CheckRequest()
    message.CopyFrom(case.request)
    if case.token is not None:
        claims = _completed(case.token, now)
        name, prefix = _token_header(case.token.issuer)
        value = prefix + keys.sign(case.token.issuer, claims)
        http = message.attributes.request.http
        if http.header_map.headers and not http.headers:
            http.header_map.headers.add(key=name, value=value)
        else:
            http.headers[name] = value
    return message


def _completed(token: CaseToken, now: datetime) -> dict[str, Any]:
    """The claims with iss, aud, iat and exp filled in where the case left them out."""
    issued = int(now.timestamp())
    claims = {"iss": token.issuer.issuer, "iat": issued, "exp": issued + TOKEN_TTL_SECONDS}
    if token.issuer.audiences:
        claims["aud"] = token.issuer.audiences[0]
    claims.update(token.claims)
    return claims


def _compare(expect: Mapping[str, Any], actual: Mapping[str, Any]) -> tuple[Mismatch, ...]:
    found = []
    for name, wanted in expect.items():
        got = actual[name]
        if name in ("would_match", "audit"):
            same = sorted(wanted) == sorted(got)  # the order of recorded rules is not a contract
        else:
            same = type(wanted) is type(got) and wanted == got
        if not same:
            found.append(Mismatch(name, wanted, got))
    return tuple(found)
