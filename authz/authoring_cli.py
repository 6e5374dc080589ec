"""The policy authors' commands: `authz test`, `authz diff`, and `authz check --explain`.

Each ``add_*`` function registers one command (or flag) on the `authz` parser;
the reports they print are rendered here, from the data that
:mod:`authz.policytest`, :mod:`authz.policy.diff` and :mod:`authz.explain` return.

Exit statuses follow `authz validate`: 2 means the input (bundle, test
documents) could not be used, with every error at ``file:line:column``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from authz.errors import BundleError, PolicyError
from authz.explain import explain
from authz.policy.bundle import Snapshot, load_bundle
from authz.policy.diff import BundleDiff, bundle_documents, diff_bundles
from authz.policytest import CaseResult, Mismatch, Report, compile_tests, rule_positions, run_tests
from authz.request import RequestAttributes

__all__ = [
    "EXIT_CHANGED",
    "EXIT_ERRORS",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_WIDENS",
    "add_diff_parser",
    "add_explain_argument",
    "add_test_parser",
    "explain_check",
    "junit_xml",
]

EXIT_OK, EXIT_FAILED, EXIT_ERRORS = 0, 1, 2
EXIT_CHANGED, EXIT_WIDENS = 1, 3  # authz diff


# --- authz test -----------------------------------------------------------------------


def add_test_parser(commands: Any) -> None:
    """Register `authz test`."""
    test = commands.add_parser(
        "test",
        help="run the bundle's PolicyTest cases and report rule coverage",
        description="Run every PolicyTest of the bundle through the decision engine, with "
        "tokens signed by in-memory keys the run trusts, and report each case and the rules "
        "no case reached. Exit 0 all passed (and coverage met), 1 failures or coverage "
        "below --min-coverage, 2 bundle or test-document errors.",
    )
    test.add_argument("policies", type=Path, help="bundle directory")
    test.add_argument(
        "--min-coverage",
        type=_percent,
        metavar="PCT",
        help="fail unless at least PCT%% of the rules are covered (0-100)",
    )
    test.add_argument("--junit-xml", type=Path, metavar="FILE", help="also write a JUnit report")
    test.add_argument("--json", action="store_true", help="print the report as JSON")
    test.set_defaults(run=_test)


def _percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text}: must be between 0 and 100")
    return value


def _test(args: argparse.Namespace) -> int:
    try:
        snapshot = load_bundle(args.policies)
    except BundleError as exc:
        return _errors("", exc.errors)
    documents, errors = bundle_documents(args.policies, snapshot)
    tests, problems = compile_tests(documents, snapshot.issuers)
    errors += problems
    if not errors and not tests:
        errors.append(PolicyError(str(args.policies), 1, 1, "", "no PolicyTest documents"))
    if errors:
        return _errors("", errors)
    report = run_tests(snapshot, tests, rule_positions(documents))
    minimum: float | None = args.min_coverage
    coverage_met = minimum is None or report.coverage >= minimum - 1e-9
    if args.junit_xml is not None:
        args.junit_xml.write_bytes(junit_xml(report, minimum))
    if args.json:
        print(json.dumps(_report_json(report, minimum, coverage_met), indent=2))
    else:
        print(_report_text(report, minimum, coverage_met))
    return EXIT_OK if not report.failed and coverage_met else EXIT_FAILED


def _errors(label: str, errors: Sequence[PolicyError]) -> int:
    for error in sorted(errors):
        print(f"{label}{error}", file=sys.stderr)
    print(f"{len(errors)} error(s)", file=sys.stderr)
    return EXIT_ERRORS


def _report_text(report: Report, minimum: float | None, met: bool) -> str:
    lines: list[str] = []
    for result in report.results:
        title = f"{result.case.where}  {result.test.name} / {result.case.name}"
        lines.append(("PASS  " if result.passed else "FAIL  ") + title)
        if not result.passed:
            lines += [f"      {line}" for line in _failure_lines(result)]
    covered = len(report.rules) - len(report.uncovered)
    need = "" if minimum is None else f", minimum {minimum:g}%" + ("" if met else ": NOT MET")
    lines.append(f"coverage: {covered}/{len(report.rules)} rules ({report.coverage:.1f}%{need})")
    for rule in report.uncovered:
        lines.append(f"  not covered: {rule}  ({report.positions.get(rule, '?')})")
    failed = len(report.failed)
    lines.append(
        f"{len(report.results)} case(s): {len(report.results) - failed} passed, {failed} failed"
    )
    return "\n".join(lines)


def _failure_lines(result: CaseResult) -> list[str]:
    """Expected against actual, one field at a time, then the whole decision."""
    lines = [_mismatch(m) for m in result.mismatches]
    lines.append("decision: " + json.dumps(result.actual))
    if result.detail:
        lines.append(f"detail: {result.detail}")
    return lines


def _mismatch(mismatch: Mismatch) -> str:
    expected, actual = mismatch.expected, mismatch.actual
    line = f"{mismatch.field}: expected {json.dumps(expected)}, got {json.dumps(actual)}"
    if isinstance(expected, list) and isinstance(actual, list):
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        parts = [f"missing {', '.join(missing)}"] * bool(missing)
        parts += [f"unexpected {', '.join(extra)}"] * bool(extra)
        line += f" ({'; '.join(parts)})" if parts else ""
    return line


def _report_json(report: Report, minimum: float | None, met: bool) -> dict[str, Any]:
    return {
        "policy_version": report.policy_version,
        "passed": len(report.results) - len(report.failed),
        "failed": len(report.failed),
        "cases": [
            {
                "test": result.test.name,
                "case": result.case.name,
                "where": result.case.where,
                "passed": result.passed,
                "expected": result.case.expect,
                "actual": result.actual,
                "mismatches": [
                    {"field": m.field, "expected": m.expected, "actual": m.actual}
                    for m in result.mismatches
                ],
                "detail": result.detail,
            }
            for result in report.results
        ],
        "coverage": {
            "percent": report.coverage,
            "rules": len(report.rules),
            "covered": sorted(report.covered & set(report.rules)),
            "uncovered": [
                {"rule": rule, "where": report.positions.get(rule)} for rule in report.uncovered
            ],
            "minimum": minimum,
            "met": met,
        },
    }


def junit_xml(report: Report, minimum: float | None = None) -> bytes:
    """The report in the JUnit XML format CI systems read: one testsuite per PolicyTest."""
    root = ElementTree.Element("testsuites", name="authz test")
    suites: dict[str, ElementTree.Element] = {}
    for result in report.results:
        test = result.test
        suite = suites.get(test.name)
        if suite is None:
            suite = ElementTree.SubElement(root, "testsuite", name=test.name, file=test.file)
            suites[test.name] = suite
        file, line, _ = result.case.where.rsplit(":", 2)
        case = ElementTree.SubElement(
            suite, "testcase", name=result.case.name, classname=test.name, file=file, line=line
        )
        if not result.passed:
            failure = ElementTree.SubElement(
                case, "failure", message="; ".join(_mismatch(m) for m in result.mismatches)
            )
            failure.text = "\n".join(_failure_lines(result))
    coverage = ElementTree.SubElement(root, "testsuite", name="rule coverage")
    needed = 0.0 if minimum is None else minimum
    case = ElementTree.SubElement(
        coverage, "testcase", name=f"coverage >= {needed:g}%", classname="rule coverage"
    )
    uncovered = "\n".join(f"{r} ({report.positions.get(r, '?')})" for r in report.uncovered)
    if report.coverage < needed - 1e-9:
        failure = ElementTree.SubElement(
            case, "failure", message=f"coverage {report.coverage:.1f}% < {needed:g}%"
        )
        failure.text = uncovered
    elif uncovered:
        ElementTree.SubElement(case, "system-out").text = "not covered:\n" + uncovered
    for suite in (*suites.values(), coverage):
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("errors", "0")
    root.set("tests", str(sum(int(s.get("tests", "0")) for s in root)))
    root.set("failures", str(sum(int(s.get("failures", "0")) for s in root)))
    data: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


# --- authz diff -----------------------------------------------------------------------


def add_diff_parser(commands: Any) -> None:
    """Register `authz diff`."""
    diff = commands.add_parser(
        "diff",
        help="rules added, removed and changed between two bundles; flags what widens access",
        description="Compare two bundles by what their rules mean, grouped by tenant (platform "
        "first), and flag every change that may allow a request the old bundle refused. "
        "Exit 0 no changes, 1 changes that do not widen access, 3 at least one change "
        "widens access, 2 either bundle has errors.",
    )
    diff.add_argument("old", type=Path, help="the bundle as it is (e.g. the main branch)")
    diff.add_argument("new", type=Path, help="the bundle as proposed")
    diff.add_argument("--json", action="store_true", help="print the diff as JSON")
    diff.set_defaults(run=_diff)


def _diff(args: argparse.Namespace) -> int:
    loaded = []
    for root in (args.old, args.new):
        try:
            snapshot = load_bundle(root)
        except BundleError as exc:
            return _errors(f"{root}: ", exc.errors)
        documents, errors = bundle_documents(root, snapshot)
        if errors:
            return _errors(f"{root}: ", errors)
        loaded.append((snapshot, documents))
    (old, old_documents), (new, new_documents) = loaded
    result: BundleDiff = diff_bundles(old, old_documents, new, new_documents)
    print(json.dumps(result.as_json(), indent=2) if args.json else result.as_text())
    if result.widens:
        return EXIT_WIDENS
    return EXIT_CHANGED if result.changed else EXIT_OK


# --- authz check --explain ------------------------------------------------------------


def add_explain_argument(check: argparse.ArgumentParser) -> None:
    """Add `--explain` / `--explain-json` to `authz check`."""
    group = check.add_mutually_exclusive_group()
    group.add_argument(
        "--explain",
        action="store_const",
        const="text",
        dest="explain",
        help="also explain the decision, step by step and rule by rule, on stderr",
    )
    group.add_argument(
        "--explain-json",
        action="store_const",
        const="json",
        dest="explain",
        help='add the explanation to the printed decision, under "explanation"',
    )


def explain_check(
    mode: str,
    snapshot: Snapshot,
    attributes: RequestAttributes,
    now: datetime,
    output: dict[str, Any],
) -> dict[str, Any]:
    """For `authz check`: print the text explanation on stderr, or add the JSON one."""
    explanation = explain(snapshot, attributes, now)
    if mode == "json":
        return {**output, "explanation": explanation.as_json()}
    print(explanation.as_text(), file=sys.stderr)
    return output
