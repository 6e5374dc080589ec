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

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from authz.decision import Decision, Reason
from authz.engine import _Evaluation, decide
from authz.identity.tokens import Token, TokenError, extract_token
from authz.policy.bundle import Snapshot
from authz.policy.index import Candidates
from authz.policy.matchers import StringMatcher
from authz.policy.rules import Action, Rule
from authz.request import RequestAttributes

__all__ = ["Explanation", "Failure", "RuleTrace", "Step", "explain", "patterns"]

# (slot in Who, negated) -> the `from` field it was compiled from (policy/rules.py).
_SOURCE_FIELDS = {
    (0, False): "principals",
    (0, True): "notPrincipals",
    (1, False): "namespaces",
    (1, True): "notNamespaces",
    (2, False): "requestPrincipals",
    (2, True): "notRequestPrincipals",
    (3, False): "roles",
    (3, True): "notRoles",
}
_ROLES = 3  # the slot of Who holding the token's roles
_WHO = ("source principal", "source namespace", "request principal", "roles")
_EFFECTS = {
    "decided": "decides",
    "would_match": "would match (dry run: recorded, not enforced)",
    "audit": "recorded in audit",
    "none": "no match",
    "wants_token": "no match; needs a token, hence 401 missing_token",
    "not_reached": "not reached (the decision was already made)",
}
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


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


def explain(snapshot: Snapshot, attributes: RequestAttributes, now: datetime) -> Explanation:
    """The decision ``decide`` makes for ``attributes`` at ``now``, and why."""
    decision = decide(snapshot, attributes, now)
    steps, state = _steps(snapshot, attributes, now, decision)
    traces: tuple[RuleTrace, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    predicted = state.reason
    consistent = True
    if state.reason is None:  # every step passed: the rules decide
        candidates = _candidates(snapshot, attributes, state)
        evaluation = _Evaluation(attributes, state.token, state.tenant, now)
        traces, predicted = _rules(candidates, evaluation)
        consistent = all(_agrees(t) for t in traces)
        skipped = _not_candidates(snapshot, attributes, state, candidates)
    consistent = consistent and predicted is decision.reason
    return Explanation(decision, snapshot.version, steps, traces, skipped, consistent)


# --- steps 1-5 ------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    token: Token | None = None
    tenant: str = ""
    platform_only: bool = False
    reason: Reason | None = None  # set when a step decides


def _steps(
    snapshot: Snapshot, request: RequestAttributes, now: datetime, decision: Decision
) -> tuple[tuple[Step, ...], _State]:
    """What decide's steps before the rules see, mirroring engine.decide in order."""
    state = _State()
    steps: list[Step] = []
    http = request.http
    if http is None:
        steps.append(Step("request", "network", "no request.http: only `from` parts can match"))
    elif http.path_problem is not None:
        state.reason = Reason.BAD_PATH
        return (*steps, Step("path", "bad_path", http.path_problem)), state
    else:
        shown = http.path if http.path == http.raw_path else f"{http.raw_path} -> {http.path}"
        steps.append(Step("path", "ok", shown))
    raw = extract_token(http.headers, snapshot.token_sources) if http else None
    verified = None if raw is None else snapshot.tokens.verify(raw, now.timestamp())
    state.token = verified if isinstance(verified, Token) else None
    own = state.token.tenant if state.token else ""
    target = snapshot.tenancy.target(http.path, http.host, http.headers) if http else ""
    steps.append(_lockdown_step(snapshot, request, target or own, now, state))
    if state.reason is not None:
        return tuple(steps), state
    steps.append(_token_step(verified, state))
    if state.reason is not None:
        return tuple(steps), state
    if not snapshot.revocations.empty:
        # Read from the decision: the engine's revocation check is not repeated here.
        revoked = decision.reason is Reason.REVOKED
        state.reason = Reason.REVOKED if revoked else None
        steps.append(Step("revocation", "revoked" if revoked else "ok", decision.detail * revoked))
        if revoked:
            return tuple(steps), state
    steps.append(_tenant_step(snapshot, target, own, state))
    return tuple(steps), state


def _lockdown_step(
    snapshot: Snapshot, request: RequestAttributes, tenant: str, now: datetime, state: _State
) -> Step:
    if not snapshot.lockdowns:
        return Step("lockdown", "none", "")
    path = request.http.path if request.http else ""
    why_not = []
    for lockdown in snapshot.lockdowns:
        if lockdown.covers(tenant, path, request.source.principal, now):
            state.reason = Reason.LOCKDOWN
            return Step("lockdown", "covered", f"{lockdown.name}: {lockdown.reason}")
        if lockdown.expires is not None and now >= lockdown.expires:
            why_not.append(f"{lockdown.name} expired")
        elif lockdown.tenant and lockdown.tenant != tenant:
            why_not.append(f"{lockdown.name} is for tenant {lockdown.tenant!r}")
        else:
            why_not.append(f"{lockdown.name} exempts this path or workload")
    return Step("lockdown", "not covered", "; ".join(why_not))


def _token_step(verified: Token | TokenError | None, state: _State) -> Step:
    if verified is None:
        return Step("token", "absent", "")
    if isinstance(verified, TokenError):
        state.reason = Reason.INVALID_TOKEN
        return Step("token", "invalid", f"{verified.code.value}: {verified.detail}")
    roles = ", ".join(verified.roles) or "none"
    tenant = verified.tenant or "none"
    detail = f"principal {verified.principal or '(no sub)'}; roles {roles}; tenant {tenant}"
    return Step("token", "valid", detail)


def _tenant_step(snapshot: Snapshot, target: str, own: str, state: _State) -> Step:
    detail = f"target {target or 'none'}, subject {own or 'none'}"
    if target and own and target != own:
        token = state.token
        if not (token and snapshot.tenancy.platform_roles.intersection(token.roles)):
            state.reason = Reason.CROSS_TENANT
            state.tenant = target
            return Step("tenant", "cross_tenant", detail + ", and no platform role")
        state.platform_only = True
        detail += ": a platform role, so platform policies only"
    state.tenant = target or own
    return Step("tenant", state.tenant or "none", detail)


# --- steps 6-9 ------------------------------------------------------------------------


def _candidates(snapshot: Snapshot, request: RequestAttributes, state: _State) -> Candidates:
    """The same lookup as engine.decide."""
    http = request.http
    if http is None:
        return snapshot.rules.candidates(state.tenant, state.platform_only, "", "")
    return snapshot.rules.candidates(
        state.tenant, state.platform_only, http.host, http.method, http.path
    )


def _rules(candidates: Candidates, evaluation: _Evaluation) -> tuple[tuple[RuleTrace, ...], Reason]:
    """Every candidate in the engine's order (DENY, AUDIT, ALLOW) and the reason it leads to.

    Rules after the deciding one are still evaluated here (the engine stops):
    they are shown as ``not_reached``, with whether they would have matched.
    """
    traces: list[RuleTrace] = []
    decided: Reason | None = None
    for rule in (*candidates.deny, *candidates.audit, *candidates.allow):
        matched = evaluation.matches(rule)
        if decided is not None:
            effect = "not_reached"
        elif not matched:
            effect = "none"
        elif rule.dry_run:
            effect = "would_match"
        elif rule.action is Action.AUDIT:
            effect = "audit"
        else:
            effect = "decided"
            decided = Reason.DENIED if rule.action is Action.DENY else Reason.ALLOWED
        traces.append(_trace(rule, matched, effect, evaluation))
    if decided is not None:
        return tuple(traces), decided
    # Step 9: 401 when logging in could help: an ALLOW rule for this request needs a token.
    wanting = {r.id for r in candidates.allow if not evaluation.token and evaluation.wants_token(r)}
    traces = [replace(t, effect="wants_token") if t.rule in wanting else t for t in traces]
    return tuple(traces), Reason.MISSING_TOKEN if wanting else Reason.NO_MATCH


def _trace(rule: Rule, matched: bool, effect: str, evaluation: _Evaluation) -> RuleTrace:
    failures = _from_failures(rule, evaluation) + _to_failures(rule, evaluation)
    when, variables = None, {}
    if rule.condition is not None:
        data = evaluation.cel_data(rule.condition.variables)
        result = rule.condition.evaluate(data)
        variables = {name: _redacted(name, data[name]) for name in data}
        if isinstance(result, str):
            closed = "matches" if rule.action is Action.DENY else "does not match"
            when = f"error: {result} (fails closed: a {rule.action.value} {closed})"
            if rule.action is not Action.DENY:
                failures += (Failure("when", f"error: {result}"),)
        else:
            when = "true" if result else "false"
            if not result:
                failures += (Failure("when", "is false"),)
    return RuleTrace(
        rule.id, rule.action.value, rule.dry_run, matched, effect, failures, when, variables
    )


def _agrees(trace: RuleTrace) -> bool:
    """The part-by-part reading says what the engine said."""
    return trace.matched is (not trace.failures)


def _from_failures(rule: Rule, evaluation: _Evaluation) -> tuple[Failure, ...]:
    if not rule.sources:
        return ()
    who = evaluation.who
    found: list[Failure] = []
    for index, source in enumerate(rule.sources):
        failure = None
        for slot, negated, matcher in source.checks:
            if slot == _ROLES:
                hit, shown = matcher.matches_any(who.roles), repr(", ".join(who.roles))
            else:
                value = str(who[slot])
                hit, shown = matcher.matches(value), repr(value)
            if hit is negated:
                field = _SOURCE_FIELDS[(slot, negated)]
                verb = "matches" if negated else "does not match"
                failure = Failure(
                    f"from[{index}].{field}",
                    f"{_WHO[slot]} {shown} {verb} {patterns(matcher)}",
                )
                break
        wanted = source.authenticated
        if failure is None and wanted is not None and wanted is not who.authenticated:
            has = "has a valid token" if who.authenticated else "has no valid token"
            failure = Failure(f"from[{index}].authenticated", f"the request {has}")
        if failure is None:
            return ()  # one entry matches: the `from` part matches
        found.append(failure)
    return tuple(found)


def _to_failures(rule: Rule, evaluation: _Evaluation) -> tuple[Failure, ...]:
    http = evaluation.request.http
    if http is None:
        if rule.needs_http:
            why = "a network-level check, and the rule has a `to` part or reads request.*"
            return (Failure("request", why),)
        return ()
    if not rule.operations:
        return ()
    values = {"methods": http.method, "paths": http.path, "hosts": http.host}
    found: list[Failure] = []
    for index, operation in enumerate(rule.operations):
        failure = None
        for field, matcher in operation.fields.items():
            negated = field.startswith("not")
            value = values[field[3].lower() + field[4:] if negated else field]
            if matcher.matches(value) is negated:
                verb = "matches" if negated else "does not match"
                failure = Failure(f"to[{index}].{field}", f"{value!r} {verb} {patterns(matcher)}")
                break
        if failure is None:
            return ()
        found.append(failure)
    return tuple(found)


def patterns(matcher: StringMatcher) -> str:
    """The patterns of a compiled matcher, written as in YAML."""
    written = sorted(matcher.exact)
    written += ["*"] if matcher.present else []
    written += [f"{prefix}*" for prefix in matcher.prefixes]
    written += [f"*{suffix}" for suffix in matcher.suffixes]
    written += [_template(t.pattern) for t in matcher.templates]
    return "[" + ", ".join(written) + "]"


def _template(regex: str) -> str:
    """The path template a regex was compiled from (matchers.compile_path_template)."""
    text = regex.removesuffix(r"\Z").replace("(?:/.*)?", "/{**}").replace("/[^/]+", "/{*}")
    out, escaped = [], False
    for char in text:
        if char == "\\" and not escaped:
            escaped = True
            continue
        out.append(char)
        escaped = False
    return "".join(out)


def _not_candidates(
    snapshot: Snapshot, request: RequestAttributes, state: _State, candidates: Candidates
) -> tuple[tuple[str, str], ...]:
    """Why each other rule of the bundle was never looked at for this request."""
    seen = {rule.id for rule in candidates.all}
    http = request.http
    host, method, path = (http.host, http.method, http.path) if http else ("", "", "")
    segment = path[1:].partition("/")[0]
    found = []
    for rule in snapshot.rules.rules:
        if rule.id in seen:
            continue
        if rule.tenant and state.platform_only:
            why = f"a policy of tenant {rule.tenant}; across tenants only platform policies apply"
        elif rule.tenant and rule.tenant != state.tenant:
            why = f"a policy of tenant {rule.tenant}; the request's is {state.tenant or 'none'}"
        elif rule.hosts and not StringMatcher.build(rule.hosts).matches(host):
            why = f"its policy's hosts {list(rule.hosts)} do not include {host or 'no host'!r}"
        elif rule.methods is not None and method not in rule.methods:
            why = f"its methods {sorted(rule.methods)} do not include {method or 'none'!r}"
        elif rule.segments is not None and segment not in rule.segments:
            why = f"none of its paths can match {path or 'no path'!r}"
        else:
            why = "not a candidate"
        found.append((rule.id, why))
    return tuple(found)


def _redacted(name: str, value: Any) -> Any:
    """A CEL input as shown: header values that may carry credentials are hidden."""
    if name != "request.headers" or not isinstance(value, Mapping):
        return value
    return {key: "<redacted>" if key in _SECRET_HEADERS else item for key, item in value.items()}


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
