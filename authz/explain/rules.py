"""Explaining spec §5 steps 6-9: each candidate rule, whether it matched and which part did not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from authz.decision import Reason
from authz.engine import _Evaluation
from authz.explain.model import Failure, RuleTrace
from authz.explain.steps import State
from authz.policy.bundle import Snapshot
from authz.policy.index import Candidates
from authz.policy.matchers import StringMatcher
from authz.policy.rules import Action, Rule
from authz.request import RequestAttributes

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
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def candidates_for(snapshot: Snapshot, request: RequestAttributes, state: State) -> Candidates:
    """The same lookup as engine.decide."""
    http = request.http
    if http is None:
        return snapshot.rules.candidates(state.tenant, state.platform_only, "", "")
    return snapshot.rules.candidates(
        state.tenant, state.platform_only, http.host, http.method, http.path
    )


def trace_rules(
    candidates: Candidates, evaluation: _Evaluation
) -> tuple[tuple[RuleTrace, ...], Reason]:
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


def agrees(trace: RuleTrace) -> bool:
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


def not_candidates(
    snapshot: Snapshot, request: RequestAttributes, state: State, candidates: Candidates
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
