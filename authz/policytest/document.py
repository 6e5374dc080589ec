"""Reading PolicyTest documents: strict validation into cases, errors at file:line:column."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from google.protobuf import json_format

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.decision import Reason
from authz.errors import PolicyError
from authz.identity.tokens import Issuer
from authz.policy.reader import Reader
from authz.policy.source import Document, Path
from authz.policytest.model import (
    DEFAULT_NOW,
    EXPECT_FIELDS,
    SIGNING_ALGORITHMS,
    Case,
    CaseToken,
    PolicyTest,
    token_header,
)

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
    if not any(alg in issuer.algorithms for alg in SIGNING_ALGORITHMS):
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
    name = token_header(issuer)[0]
    present = {key.lower() for key in http.headers}
    present.update(header.key.lower() for header in http.header_map.headers)
    if name in present:
        reader.error((*path, "token"), f"the request already sets {name!r}; drop it or the token")


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
