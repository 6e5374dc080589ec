"""Runtime lockdowns for the tests, and the decision a store's current snapshot makes."""

from __future__ import annotations

from datetime import timedelta

from authz.decision import Reason
from authz.engine import decide
from authz.identity.peers import istio_form
from authz.policy.lockdown import Lockdown
from authz.policy.matchers import StringMatcher
from authz.store import SnapshotStore
from tests.engine.checks import attributes
from tests.lifecycle.clock import Clock

BREAK_GLASS = "spiffe://cluster.local/ns/ops/sa/break-glass"


def incident(name: str = "incident", *, tenant: str = "", clock: Clock | None = None) -> Lockdown:
    """A lockdown exempting health probes and the break-glass workload; expiring in
    an hour of ``clock``, or never without one."""
    expires = None if clock is None else clock.now + timedelta(hours=1)
    return Lockdown(
        name=name,
        tenant=tenant,
        reason="INC-4711",
        exempt_paths=StringMatcher.build(["/healthz", "/status/{**}"], templates=True),
        exempt_principals=StringMatcher.build([BREAK_GLASS], istio_form),
        expires=expires,
    )


def reason(store: SnapshotStore, path: str, principal: str | None = None) -> Reason:
    """The reason of the decision on a GET of ``path`` with the store's current snapshot."""
    request = attributes(path=path, principal=principal)
    return decide(store.current, request, Clock().now).reason
