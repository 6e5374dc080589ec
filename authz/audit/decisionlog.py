"""The decision log: one JSON line per answered Check (spec §8 plus who, what, when).

An :class:`authz.observe.Observer`: on the request path it only queues the
``Checked`` event (allows sheddable, denies kept, see :mod:`authz.audit.writer`);
the record is built and serialised on the writer thread. A record names the
caller (source principal, token subject and issuer) and the request (method,
host, normalised path: never the query string, never the token, never a
cookie). Headers are logged only when listed, and never those that carry
credentials: ``authorization``, cookies, and whatever header the bundle's
Issuers read tokens from (checked again for each record, since a reload may
add one).

Shadow differences are known only after the response (the shadow decides
later): they are written as their own ``shadow_difference`` records, keyed by
the ``decision_id`` of the decision record they belong to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from authz.audit.config import NEVER_LOGGED
from authz.audit.writer import Lines, LineWriter, rfc3339
from authz.observe import Checked
from authz.policy.bundle import Snapshot
from authz.store import SnapshotStore

__all__ = ["DecisionLog", "decision_record", "trace_id"]

_log = logging.getLogger("authz.audit")
_MAX_VALUE = 256  # longer header values are cut: a log line is not a data store
_NO_HEADERS: Mapping[str, str] = {}


class DecisionLog:
    """Queues every answered Check; ``written``, ``allow_dropped``, ``deny_dropped``
    count what happened to them (shadow differences count as denies: kept)."""

    def __init__(
        self,
        lines: Lines,
        store: SnapshotStore,
        *,
        log_headers: tuple[str, ...] = (),
        queue_allows: int = 10_000,
        queue_denies: int = 10_000,
    ) -> None:
        self._store = store
        self._headers = log_headers
        self._allowed_for: tuple[Snapshot, tuple[str, ...]] | None = None
        self._writer = LineWriter(
            lines,
            self._render,
            name="authz-decision-log",
            shed_limit=queue_allows,
            kept_reserve=queue_denies,
        )

    @property
    def written(self) -> int:
        return self._writer.written

    @property
    def allow_dropped(self) -> int:
        return self._writer.shed_dropped

    @property
    def deny_dropped(self) -> int:
        return self._writer.kept_dropped

    def checked(self, event: Checked) -> None:
        """Queue the decision (the Observer call): an append, nothing else."""
        self._writer.offer(event, kept=not event.decision.allowed)

    def shadow_difference(self, record: dict[str, Any]) -> None:
        """Queue a shadow difference (a record built by :mod:`authz.shadow`)."""
        self._writer.offer(record, kept=True)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then close (blocking)."""
        self._writer.close(timeout)

    def _render(self, item: Checked | dict[str, Any]) -> dict[str, Any]:
        if isinstance(item, dict):
            return item
        return decision_record(item, self._loggable())

    def _loggable(self) -> tuple[str, ...]:
        """The listed headers, less those the current bundle reads tokens from."""
        if not self._headers:
            return ()
        snapshot = self._store.current
        cached = self._allowed_for
        if cached is None or cached[0] is not snapshot:
            tokens = {source.name for source in snapshot.token_sources}
            refused = tokens.intersection(self._headers)
            if refused:
                _log.warning(
                    "log-header %s: the bundle reads tokens from it, so it is not logged",
                    ", ".join(sorted(refused)),
                )
            cached = self._allowed_for = (
                snapshot,
                tuple(name for name in self._headers if name not in tokens),
            )
        return cached[1]


def decision_record(event: Checked, headers: tuple[str, ...] = ()) -> dict[str, Any]:
    """The log record of one answered Check."""
    decision, attributes = event.decision, event.attributes
    http = attributes.http if attributes is not None else None
    present = http.headers if http is not None else _NO_HEADERS
    record: dict[str, Any] = {"type": "decision", "time": rfc3339(event.now)}
    record |= decision.as_json(event.decision_id, event.policy_version)
    record |= {
        "latency_us": round(event.duration_ns / 1000, 1),
        "method": http.method if http else "",
        "host": http.host if http else "",
        "path": http.path if http else "",  # normalised, without the query string
        "source_principal": attributes.source.principal if attributes else "",
        "subject": decision.subject,
        "issuer": decision.issuer,
        "trace_id": trace_id(present),
    }
    if event.cached:
        record["cached"] = True  # answered from the decision cache (--decision-cache)
    if headers:
        record["headers"] = {
            name: value[:_MAX_VALUE]
            for name in headers
            if name not in NEVER_LOGGED and (value := present.get(name)) is not None
        }
    return record


def trace_id(headers: Mapping[str, str]) -> str:
    """The trace this request belongs to: W3C ``traceparent``, else B3, else Envoy's
    ``x-request-id``; '' when none is present."""
    parent = headers.get("traceparent")
    if parent is not None:
        parts = parent.strip().split("-")
        if len(parts) >= 4 and len(parts[1]) == 32:
            return parts[1][:32]
    for name in ("x-b3-traceid", "x-request-id"):
        value = headers.get(name)
        if value:
            return value.strip()[:64]
    return ""
