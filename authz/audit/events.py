"""Security events: a separate stream of what an operator must look at.

Request-borne events come from :class:`BurstWatch`, an observer of answered
Checks: invalid-token and revoked *bursts* (one event when a source reaches
the threshold within the window, not one per request) and cross-tenant
attempts (one event per source, subject and tenant per window). The others
are reported by their owners through :meth:`SecurityEvents.emit`: the store
(lockdowns, rollbacks, unpins), the reloader (failed reloads) and the key
fetcher (identity-provider key fetches that failed).

Every event is one JSON line (``type: security_event``) in the stream, and is
also POSTed to the webhook, if any. Emitting never blocks and never raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from authz.audit.writer import rfc3339
from authz.decision import Reason
from authz.observe import Checked

__all__ = ["BurstWatch", "SecurityEvents"]

_MAX_WINDOWS = 10_000  # sources tracked at once: a spray of addresses cannot grow memory
_KINDS = {
    Reason.INVALID_TOKEN: "invalid_token_burst",
    Reason.REVOKED: "revoked_burst",
    Reason.CROSS_TENANT: "cross_tenant_attempt",
}


class _Queue(Protocol):
    def offer(self, record: Any, *, kept: bool) -> None: ...


class SecurityEvents:
    """Hands each event to ``outputs`` (the stream's writer, the webhook); thread-safe.

    ``emitted`` counts events."""

    def __init__(self, outputs: tuple[_Queue, ...]) -> None:
        self._outputs = outputs
        self.emitted = 0

    def emit(self, event: str, **fields: Any) -> None:
        """One event: its name and what it is about (no secrets, no tokens)."""
        record = {"type": "security_event", "event": event, "time": rfc3339(datetime.now(UTC))}
        record |= fields
        self.emitted += 1
        for output in self._outputs:
            output.offer(record, kept=True)


class BurstWatch:
    """Counts invalid_token, revoked and cross_tenant answers per source in windows."""

    def __init__(
        self,
        events: SecurityEvents,
        *,
        threshold: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = _MAX_WINDOWS,
    ) -> None:
        self._events = events
        self._max_sources = max_sources
        self._threshold = threshold
        self._window = window_seconds
        self._clock = clock
        # key -> [window start, count, reported]
        self._windows: dict[tuple[str, ...], list[Any]] = {}

    def checked(self, event: Checked) -> None:
        """The Observer call: a dict lookup for every answer that is not watched."""
        kind = _KINDS.get(event.decision.reason)
        if kind is not None:
            self._count(kind, event)

    def _count(self, kind: str, event: Checked) -> None:
        decision, attributes = event.decision, event.attributes
        principal = attributes.source.principal if attributes else ""
        address = attributes.source_address if attributes else ""
        key = (kind, principal, address, decision.subject, decision.tenant)
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self._window:
            if len(self._windows) >= self._max_sources:
                self._forget(now)
            window = self._windows[key] = [now, 0, False]
        window[1] += 1
        threshold = 1 if decision.reason is Reason.CROSS_TENANT else self._threshold
        if window[2] or window[1] < threshold:
            return
        window[2] = True
        http = attributes.http if attributes else None
        self._events.emit(
            kind,
            count=window[1],
            window_seconds=self._window,
            source_principal=principal,
            source_address=address,
            subject=decision.subject,
            tenant=decision.tenant,
            method=http.method if http else "",
            path=http.path if http else "",
            decision_id=event.decision_id,
        )

    def _forget(self, now: float) -> None:
        """Drop the windows that ended; if every one is still open, the quieter half, so
        that a spray of new sources cannot wipe out the count of a busy one."""
        windows = self._windows
        ended = [key for key, window in windows.items() if now - window[0] >= self._window]
        if not ended:
            by_count = sorted(windows, key=lambda key: windows[key][1])
            ended = by_count[: len(by_count) // 2 or 1]
        for key in ended:
            del windows[key]
