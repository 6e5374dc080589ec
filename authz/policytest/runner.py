"""Running PolicyTest cases through the real engine, with ephemeral in-memory keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import jwt

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.engine import decide
from authz.identity.keys import KeySet
from authz.identity.minting import jwks_for, new_private_key
from authz.identity.tokens import Issuer, TokenVerifier, header_sources
from authz.policy.bundle import Snapshot
from authz.policytest.model import (
    SIGNING_ALGORITHMS,
    Case,
    CaseResult,
    CaseToken,
    Mismatch,
    PolicyTest,
    Report,
    token_header,
)
from authz.request import from_check_request

TOKEN_TTL_SECONDS = 3600  # `exp` of a test token that does not set it: now + 1 h
TEST_KID = "policytest"


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
        alg = next((alg for alg in SIGNING_ALGORITHMS if alg in issuer.algorithms), None)
        keys = KeySet.EMPTY
        if alg is not None:
            private_key = new_private_key(alg)
            keys = KeySet.from_jwks(jwks_for(private_key, TEST_KID, alg))
            signers[issuer.issuer] = (private_key, alg)
        issuers.append(replace(issuer, keys=keys, remote=None))
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
        name, prefix = token_header(case.token.issuer)
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
