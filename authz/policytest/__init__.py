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

from authz.policytest.document import compile_tests, rule_positions
from authz.policytest.model import (
    DEFAULT_NOW,
    EXPECT_FIELDS,
    Case,
    CaseResult,
    CaseToken,
    Mismatch,
    PolicyTest,
    Report,
)
from authz.policytest.runner import (
    EphemeralKeys,
    case_request,
    ephemeral_keys,
    run_case,
    run_tests,
)

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
