"""Explaining one decision: the engine's own decision, with the steps and rule traces beside it."""

from __future__ import annotations

from datetime import datetime

from authz.engine import _Evaluation, decide
from authz.explain.model import Explanation, RuleTrace
from authz.explain.rules import agrees, candidates_for, not_candidates, trace_rules
from authz.explain.steps import trace_steps
from authz.policy.bundle import Snapshot
from authz.request import RequestAttributes


def explain(snapshot: Snapshot, attributes: RequestAttributes, now: datetime) -> Explanation:
    """The decision ``decide`` makes for ``attributes`` at ``now``, and why."""
    decision = decide(snapshot, attributes, now)
    steps, state = trace_steps(snapshot, attributes, now, decision)
    traces: tuple[RuleTrace, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    predicted = state.reason
    consistent = True
    if state.reason is None:  # every step passed: the rules decide
        candidates = candidates_for(snapshot, attributes, state)
        evaluation = _Evaluation(attributes, state.token, state.tenant, now)
        traces, predicted = trace_rules(candidates, evaluation)
        consistent = all(agrees(t) for t in traces)
        skipped = not_candidates(snapshot, attributes, state, candidates)
    consistent = consistent and predicted is decision.reason
    return Explanation(decision, snapshot.version, steps, traces, skipped, consistent)
