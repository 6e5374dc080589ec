"""Explanations: why a request got its decision, step by step and rule by rule.

``explain(snapshot, attributes, now)`` takes the decision from
:func:`authz.engine.decide` itself and adds, beside it, what each step of
spec §5 saw (path, lockdown, token, revocation, tenants) and, for every
candidate rule, whether it matched and which part did not: the ``from`` entry
and field, the ``to`` entry and field with the request's value, or the value
of ``when`` (or its error). Whether a rule matched, and the CEL inputs it
saw, are asked of the engine's own per-request evaluation (``_Evaluation``,
private to engine.py, used here on purpose) rather than re-implemented, so the
explanation cannot drift from the decision; the part-by-part reading beside
it is checked against that answer.

Explanations are for people debugging policy offline (``authz check
--explain``); they may show claims and headers, but never a token: header
values that carry one are redacted.
"""

from __future__ import annotations

from authz.explain.analysis import explain
from authz.explain.model import Explanation, Failure, RuleTrace, Step
from authz.explain.rules import patterns

__all__ = ["Explanation", "Failure", "RuleTrace", "Step", "explain", "patterns"]
