"""Explaining spec §5 steps 1-5 (path, lockdown, token, revocation, tenants) as decide sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from authz.decision import Decision, Reason
from authz.explain.model import Step
from authz.identity.tokens import Token, TokenError, extract_token
from authz.policy.bundle import Snapshot
from authz.request import RequestAttributes


@dataclass(slots=True)
class State:
    token: Token | None = None
    tenant: str = ""
    platform_only: bool = False
    reason: Reason | None = None  # set when a step decides


def trace_steps(
    snapshot: Snapshot, request: RequestAttributes, now: datetime, decision: Decision
) -> tuple[tuple[Step, ...], State]:
    """What decide's steps before the rules see, mirroring engine.decide in order."""
    state = State()
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
    snapshot: Snapshot, request: RequestAttributes, tenant: str, now: datetime, state: State
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


def _token_step(verified: Token | TokenError | None, state: State) -> Step:
    if verified is None:
        return Step("token", "absent", "")
    if isinstance(verified, TokenError):
        state.reason = Reason.INVALID_TOKEN
        return Step("token", "invalid", f"{verified.code.value}: {verified.detail}")
    roles = ", ".join(verified.roles) or "none"
    tenant = verified.tenant or "none"
    detail = f"principal {verified.principal or '(no sub)'}; roles {roles}; tenant {tenant}"
    return Step("token", "valid", detail)


def _tenant_step(snapshot: Snapshot, target: str, own: str, state: State) -> Step:
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
