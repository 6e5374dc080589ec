"""CEL runtime errors fail closed (spec §4.3): an erroring ALLOW never matches, an
erroring DENY always matches, and either way the rule id is recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authz.decision import Reason
from authz.engine import decide
from tests.engine.checks import attributes
from tests.policy.bundles import ISSUER_YAML, NOW, SigningKey, compile_bundle

MISSING_HEADER = 'request.headers["x-missing"] == "x"'
BAD_CONVERSION = 'int(request.headers["x-amount"]) <= 5000'
NOT_A_BOOL = "request.auth.claims.flag"  # dyn: a string at run time
DIVISION = "100 / int(request.headers['x-zero']) > 1"


def _rule(name: str, action: str, when: str | None = None, path: str = "/a") -> str:
    lines = [f"- name: {name}", f"  action: {action}", f"  to: [{{paths: [{path}]}}]"]
    if when is not None:
        lines.append(f"  when: {json.dumps(when)}")
    return "\n".join(lines)


CASES = [
    pytest.param(
        [_rule("allow", "ALLOW", MISSING_HEADER)],
        Reason.NO_MATCH,
        None,
        (),
        ("p/allow",),
        id="erroring-allow-does-not-match",
    ),
    pytest.param(
        [_rule("deny", "DENY", MISSING_HEADER), _rule("allow", "ALLOW")],
        Reason.DENIED,
        "p/deny",
        (),
        ("p/deny",),
        id="erroring-deny-matches",
    ),
    pytest.param(
        [_rule("allow", "ALLOW"), _rule("deny", "DENY", BAD_CONVERSION)],
        Reason.DENIED,
        "p/deny",
        (),
        ("p/deny",),
        id="erroring-deny-after-allow-still-denies",
    ),
    pytest.param(
        [_rule("bad", "ALLOW", BAD_CONVERSION), _rule("good", "ALLOW")],
        Reason.ALLOWED,
        "p/good",
        (),
        ("p/bad",),
        id="erroring-allow-then-matching-allow",
    ),
    pytest.param(
        [_rule("audit", "AUDIT", DIVISION), _rule("allow", "ALLOW")],
        Reason.ALLOWED,
        "p/allow",
        (),
        ("p/audit",),
        id="erroring-audit-not-recorded-as-match",
    ),
    pytest.param(
        [_rule("allow", "ALLOW", NOT_A_BOOL)],
        Reason.NO_MATCH,
        None,
        (),
        ("p/allow",),
        id="non-bool-allow-does-not-match",
    ),
    pytest.param(
        [_rule("deny", "DENY", NOT_A_BOOL), _rule("allow", "ALLOW")],
        Reason.DENIED,
        "p/deny",
        (),
        ("p/deny",),
        id="non-bool-deny-matches",
    ),
    pytest.param(
        [_rule("deny", "DENY", MISSING_HEADER, path="/other"), _rule("allow", "ALLOW")],
        Reason.ALLOWED,
        "p/allow",
        (),
        (),
        id="deny-for-another-path-never-evaluated",
    ),
    pytest.param(
        [_rule("dry", "DENY", MISSING_HEADER) + "\n  dryRun: true", _rule("allow", "ALLOW")],
        Reason.ALLOWED,
        "p/allow",
        ("p/dry",),
        ("p/dry",),
        id="erroring-dry-run-deny-recorded-not-enforced",
    ),
]


@pytest.mark.parametrize(("rules", "reason", "rule", "would_match", "errors"), CASES)
def test_runtime_errors_fail_closed(
    tmp_path: Path,
    key: SigningKey,
    rules: list[str],
    reason: Reason,
    rule: str | None,
    would_match: tuple[str, ...],
    errors: tuple[str, ...],
) -> None:
    body = "\n".join(rules).replace("\n", "\n    ")
    policy = (
        f"apiVersion: authz/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  rules:\n    {body}\n"
    )
    snapshot = compile_bundle(tmp_path, {"i.yaml": ISSUER_YAML, "p.yaml": policy}, key)
    request: dict[str, Any] = {
        "path": "/a",
        "headers": {"x-amount": "lots", "x-zero": "0"},
        "token": key.token(flag="yes"),
    }
    decision = decide(snapshot, attributes(**request), NOW)
    assert (decision.reason, decision.rule) == (reason, rule)
    assert decision.would_match == would_match
    assert decision.cel_errors == errors
    assert decision.audit == ()
