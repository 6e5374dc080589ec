"""The explanation model and its rendering: steps, rule traces, as JSON and as text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authz.decision import Decision

_EFFECTS = {
    "decided": "decides",
    "would_match": "would match (dry run: recorded, not enforced)",
    "audit": "recorded in audit",
    "none": "no match",
    "wants_token": "no match; needs a token, hence 401 missing_token",
    "not_reached": "not reached (the decision was already made)",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One step before the rules (spec §5 steps 1-5) and what it found."""

    name: str
    outcome: str  # e.g. "ok", "valid", "invalid", "covered", "cross_tenant"
    detail: str


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one part of a rule did not match: ``where`` is e.g. ``from[0].roles``."""

    where: str
    message: str


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One candidate rule: did it match, what did that do, and if not, why not."""

    rule: str
    action: str
    dry_run: bool
    matched: bool
    effect: str  # decided, would_match, audit, not_reached, overridden, none, wants_token
    failures: tuple[Failure, ...]
    when: str | None  # "true", "false", "error: ..." or None without a `when`
    variables: Mapping[str, Any]  # the values `when` read (secrets redacted)


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision (from ``decide``) and the reasons behind it."""

    decision: Decision
    policy_version: str
    steps: tuple[Step, ...]
    rules: tuple[RuleTrace, ...]
    not_applicable: tuple[tuple[str, str], ...]  # (rule id, why it was not a candidate)
    consistent: bool  # the part-by-part reading agrees with the engine everywhere

    def as_json(self) -> dict[str, Any]:
        """The explanation as data (the decision without its id)."""
        decision = self.decision.as_json("", self.policy_version)
        del decision["decision_id"]
        if self.decision.detail:
            decision["detail"] = self.decision.detail
        return {
            "decision": decision,
            "steps": [
                {"step": s.name, "outcome": s.outcome, "detail": s.detail} for s in self.steps
            ],
            "rules": [_trace_json(trace) for trace in self.rules],
            "not_applicable": [{"rule": rule, "why": why} for rule, why in self.not_applicable],
            "consistent": self.consistent,
        }

    def as_text(self) -> str:
        """The explanation for people, one fact per line."""
        d = self.decision
        head = "allowed" if d.allowed else f"denied {d.status} {d.reason.value}"
        lines = [f"decision: {head}" + (f" by {d.rule}" if d.rule else "")]
        if d.detail:
            lines.append(f"  detail: {d.detail}")
        lines.append("steps:")
        lines += [f"  {s.name:<11} {s.outcome:<13} {s.detail}".rstrip() for s in self.steps]
        if self.rules:
            lines.append(f"rules ({len(self.rules)} candidate(s), in evaluation order):")
        for trace in self.rules:
            mark = "MATCH" if trace.matched else "no   "
            kind = trace.action + (" dryRun" if trace.dry_run else "")
            lines.append(f"  {mark} {trace.rule} ({kind}): {_EFFECTS[trace.effect]}")
            lines += [
                f"        {f.where}: {f.message}" for f in trace.failures if f.where != "when"
            ]
            if trace.when is not None:
                lines.append(f"        when = {trace.when}")
            lines += [
                f"          {name} = {_show(value)}" for name, value in trace.variables.items()
            ]
        if self.not_applicable:
            lines.append(f"not applicable ({len(self.not_applicable)} rule(s)):")
            lines += [f"  {rule}: {why}" for rule, why in self.not_applicable]
        if not self.consistent:
            lines.append("WARNING: this explanation disagrees with the engine; please report it")
        return "\n".join(lines)


def _trace_json(trace: RuleTrace) -> dict[str, Any]:
    return {
        "rule": trace.rule,
        "action": trace.action,
        "dry_run": trace.dry_run,
        "matched": trace.matched,
        "effect": trace.effect,
        "failures": [{"where": f.where, "message": f.message} for f in trace.failures],
        "when": trace.when,
        "variables": {name: _jsonable(value) for name, value in trace.variables.items()},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _show(value: Any) -> str:
    return json.dumps(_jsonable(value), sort_keys=True, default=str)
