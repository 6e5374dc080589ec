"""The decision engine: ``decide(snapshot, request, now)``, spec §5 step by step.

A pure function of its arguments: no I/O, no clock, no logging, no globals.
Everything unexpected is the caller's to turn into a deny (the server does).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from authz.decision import Decision, Reason
from authz.identity.peers import certificate_serial
from authz.identity.tokens import Token, TokenError, extract_token
from authz.policy.bundle import Snapshot
from authz.policy.index import Candidates
from authz.policy.revocations import Revocations
from authz.policy.rules import Action, Rule, Who
from authz.request import RequestAttributes

__all__ = ["decide"]


def decide(snapshot: Snapshot, request: RequestAttributes, now: datetime) -> Decision:
    """Decide one request against one snapshot at time ``now`` (timezone-aware)."""
    http = request.http
    if http is not None and http.path_problem is not None:
        return Decision(Reason.BAD_PATH, detail=http.path_problem)
    raw_token = extract_token(http.headers, snapshot.token_sources) if http else None
    verified = None if raw_token is None else snapshot.tokens.verify(raw_token, now.timestamp())
    token = verified if isinstance(verified, Token) else None
    subject = token.subject if token else ""
    issuer = token.issuer if token else ""
    own = token.tenant if token else ""
    target = snapshot.tenancy.target(http.path, http.host, http.headers) if http else ""
    for lockdown in snapshot.lockdowns:
        if lockdown.covers(target or own, http.path if http else "", request.source.principal, now):
            detail = f"lockdown {lockdown.name}: {lockdown.reason}"
            return Decision(
                Reason.LOCKDOWN, tenant=target or own, subject=subject, detail=detail, issuer=issuer
            )
    if isinstance(verified, TokenError):
        return Decision(Reason.INVALID_TOKEN, detail=verified.detail)
    if not snapshot.revocations.empty:
        revoked = _revoked(snapshot.revocations, token, request)
        if revoked is not None:
            return revoked
    platform_only = False
    if target and own and target != own:
        # A platform role may act across tenants, but then only platform policies
        # apply: one tenant's rules can never grant access to another's data.
        if not (token and snapshot.tenancy.platform_roles.intersection(token.roles)):
            return Decision(Reason.CROSS_TENANT, tenant=target, subject=subject, issuer=issuer)
        platform_only = True
    tenant = target or own
    if http is None:
        rules = snapshot.rules.candidates(tenant, platform_only, "", "")
    else:
        rules = snapshot.rules.candidates(tenant, platform_only, http.host, http.method, http.path)
    return _Evaluation(request, token, tenant, now).run(rules, subject)


def _revoked(
    revocations: Revocations, token: Token | None, request: RequestAttributes
) -> Decision | None:
    """Step 4's revocation check: a revoked token is 401, a revoked workload 403."""
    jti = token.claims.get("jti") if token is not None else None
    if token is not None and (
        (isinstance(jti, str) and jti in revocations.token_ids)
        or token.principal in revocations.subjects
    ):
        return Decision(
            Reason.REVOKED, subject=token.subject, detail="token revoked", issuer=token.issuer
        )
    if request.source.principal in revocations.principals:
        return Decision(Reason.REVOKED, detail="workload revoked", http_status=403)
    if revocations.serials and request.certificate:
        serial = certificate_serial(request.certificate)
        if serial is None or serial in revocations.serials:
            # An unreadable certificate cannot be shown not to be revoked.
            why = "peer certificate unreadable" if serial is None else "certificate revoked"
            return Decision(Reason.REVOKED, detail=why, http_status=403)
    return None


class _Evaluation:
    """Steps 6-9 over the candidate rules of one request."""

    def __init__(
        self, request: RequestAttributes, token: Token | None, tenant: str, now: datetime
    ) -> None:
        self.request = request
        self.token = token
        self.tenant = tenant
        self.now = now
        peer = request.source
        self.who = Who(
            peer.principal,
            peer.namespace,
            token.principal if token else "",
            token.roles if token else (),
            token is not None,
        )
        self.inputs: dict[str, Any] = {}
        self.would_match: list[str] = []
        self.cel_errors: list[str] = []

    def run(self, rules: Candidates, subject: str) -> Decision:
        denied = self.first(rules.deny)
        if denied is not None:
            return self.decision(Reason.DENIED, subject, denied.id)
        audit = tuple(rule.id for rule in rules.audit if self.hit(rule)) if rules.audit else ()
        allowed = self.first(rules.allow)
        if allowed is not None:
            return self.decision(Reason.ALLOWED, subject, allowed.id, audit)
        if self.token is None and any(self.wants_token(rule) for rule in rules.allow):
            return self.decision(Reason.MISSING_TOKEN, subject, None, audit)
        return self.decision(Reason.NO_MATCH, subject, None, audit)

    def decision(
        self, reason: Reason, subject: str, rule: str | None, audit: tuple[str, ...] = ()
    ) -> Decision:
        """The outcome, with what was recorded on the way."""
        return Decision(
            reason,
            rule,
            self.tenant,
            subject,
            tuple(self.would_match),
            audit,
            tuple(self.cel_errors),
            issuer=self.token.issuer if self.token else "",
        )

    def first(self, rules: tuple[Rule, ...]) -> Rule | None:
        """The first enforced rule that matches; dry-run hits are recorded on the way."""
        matches = self.matches
        for rule in rules:
            if matches(rule):
                if not rule.dry_run:
                    return rule
                self.would_match.append(rule.id)
        return None

    def hit(self, rule: Rule) -> bool:
        """Whether an enforced rule matches (dry-run matches go to ``would_match``)."""
        if not self.matches(rule):
            return False
        if rule.dry_run:
            self.would_match.append(rule.id)
            return False
        return True

    def matches(self, rule: Rule) -> bool:
        """Every present part of ``rule`` matches; CEL errors fail closed."""
        # `from` and `to` are compiled functions (policy/codegen.py): this runs for
        # every candidate rule of every request.
        http = self.request.http
        if http is None:
            # A network-level check: rules with a `to` part or reading request.* never match.
            if rule.needs_http or not rule.match(self.who, "", "", ""):
                return False
        elif not rule.match(self.who, http.method, http.path, http.host):
            return False
        if rule.condition is None:
            return True
        result = rule.condition.evaluate(self.cel_data(rule.condition.variables))
        if isinstance(result, str):
            self.cel_errors.append(rule.id)
            # Fail closed: an erroring DENY still denies, an erroring ALLOW never allows.
            return rule.action is Action.DENY
        return result

    def wants_token(self, rule: Rule) -> bool:
        """An enforced ALLOW rule for this host/method/path that needs token attributes."""
        http = self.request.http
        if rule.dry_run or not rule.needs_token:
            return False
        if not rule.operations:
            return True
        return http is not None and rule.match_to(http.method, http.path, http.host)

    def cel_data(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The CEL variables ``names``, each converted at most once per request."""
        inputs = self.inputs
        for name in names:
            if name not in inputs:
                value = _VARIABLES[name](self)
                if value is not None:
                    inputs[name] = value
        return {name: inputs[name] for name in names if name in inputs}


def _http(attribute: str) -> Callable[[_Evaluation], Any]:
    def read(evaluation: _Evaluation) -> Any:
        http = evaluation.request.http
        return None if http is None else getattr(http, attribute)

    return read


def _query(evaluation: _Evaluation) -> dict[str, str] | None:
    http = evaluation.request.http
    if http is None:
        return None
    query: dict[str, str] = {}
    for key, value in parse_qsl(http.query, keep_blank_values=True):
        query.setdefault(key, value)
    return query


def _time(evaluation: _Evaluation) -> datetime | None:
    http = evaluation.request.http
    if http is None:
        return None
    if http.time_ns is None:
        return evaluation.now
    seconds, nanos = divmod(http.time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)


def _auth(read: Callable[[Token], Any], empty: Any) -> Callable[[_Evaluation], Any]:
    def value(evaluation: _Evaluation) -> Any:
        token = evaluation.token
        return empty if token is None else read(token)

    return value


_VARIABLES: dict[str, Callable[[_Evaluation], Any]] = {
    "request.method": _http("method"),
    "request.path": _http("path"),
    "request.raw_path": _http("raw_path"),
    "request.query": _query,
    "request.host": _http("host"),
    "request.scheme": _http("scheme"),
    "request.protocol": _http("protocol"),
    "request.id": _http("id"),
    "request.headers": lambda e: None if e.request.http is None else dict(e.request.http.headers),
    "request.time": _time,
    "request.auth.claims": _auth(lambda t: t.claims, {}),
    "request.auth.principal": _auth(lambda t: t.principal, ""),
    "request.auth.audiences": _auth(lambda t: list(t.audiences), []),
    "request.auth.roles": _auth(lambda t: list(t.roles), []),
    "request.auth.tenant": _auth(lambda t: t.tenant, ""),
    "source.principal": lambda e: e.request.source.principal,
    "source.namespace": lambda e: e.request.source.namespace,
    "source.service_account": lambda e: e.request.source.service_account,
    "source.address": lambda e: e.request.source_address,
    "source.port": lambda e: e.request.source_port,
    "destination.address": lambda e: e.request.destination_address,
    "destination.port": lambda e: e.request.destination_port,
    "destination.principal": lambda e: e.request.destination_principal,
    "tenant": lambda e: e.tenant,
    "context": lambda e: dict(e.request.context),
    "now": lambda e: e.now,
}
