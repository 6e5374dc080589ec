"""Shadow rollout: a candidate bundle decides every request too, and is never enforced.

The edge answers Check from the active bundle as always, then hands the same
request attributes and the same ``now`` to :meth:`Shadow.submit`, which only
schedules the shadow decision on the event loop (``call_soon``): it runs after
the handler has returned its response, never before. Every outcome that
differs (allowed, status, reason, rule) is logged on ``authz.shadow`` as one
JSON line and counted. Nothing that happens here reaches a response: errors
are counted and logged, and under overload evaluations are dropped (and
counted) rather than queued without bound.

The shadow bundle is reloaded like the active one, by its own store and
reloader (no state directory, no history worth keeping: a shadow is never
rolled back to).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from authz.audit.writer import rfc3339
from authz.decision import Decision
from authz.engine import decide
from authz.errors import BundleError
from authz.identity.tokens import Token, extract_token
from authz.policy.bundle import Snapshot
from authz.reload import DirectoryWatch, Reloader, WatchError
from authz.request import RequestAttributes
from authz.store import RuntimeLockdown, SnapshotStore

__all__ = ["DEFAULT_PENDING_LIMIT", "Shadow", "open_shadow"]

_log = logging.getLogger("authz.shadow")

DEFAULT_PENDING_LIMIT = 1_000
_COUNTERS = ("evaluated", "differences", "widened", "narrowed", "errors", "dropped")


class Shadow:
    """Decides requests with ``store``'s snapshot next to the active ``active`` store's.

    Counters (read by whoever exports them): ``evaluated`` shadow decisions
    made, ``differences`` among them, of which ``widened`` (the shadow allows
    what the active bundle denied) and ``narrowed`` (the reverse), ``errors``
    (evaluations that raised) and ``dropped`` (not evaluated: ``pending_limit``
    evaluations were already waiting). Everything runs on the event loop.
    """

    def __init__(
        self,
        store: SnapshotStore,
        active: SnapshotStore,
        *,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
    ) -> None:
        if pending_limit < 1:
            raise ValueError("pending_limit must be at least 1")
        self.store = store
        self.evaluated = 0
        self.differences = 0
        self.widened = 0
        self.narrowed = 0
        self.errors = 0
        self.dropped = 0
        self._active = active
        self._limit = pending_limit
        self._pending = 0
        self._call_soon = asyncio.get_running_loop().call_soon
        self._merged: tuple[Snapshot, tuple[RuntimeLockdown, ...], Snapshot] | None = None
        #: Also handed each difference record (the decision log), if set.
        self.record: Callable[[dict[str, Any]], None] | None = None

    def counters(self) -> dict[str, int]:
        """The counters by name, for export."""
        return {name: getattr(self, name) for name in _COUNTERS}

    def submit(
        self,
        active: Snapshot,
        attributes: RequestAttributes,
        now: datetime,
        enforced: Decision,
        decision_id: str,
    ) -> None:
        """Schedule the shadow decision of a request already answered with ``enforced``.

        Called on the event loop, from the Check handler: it only schedules.
        """
        if self._pending >= self._limit:
            self.dropped += 1
            return
        self._pending += 1
        self._call_soon(self._evaluate, active, attributes, now, enforced, decision_id)

    def _evaluate(
        self,
        active: Snapshot,
        attributes: RequestAttributes,
        now: datetime,
        enforced: Decision,
        decision_id: str,
    ) -> None:
        self._pending -= 1
        try:
            shadow = self._snapshot()
            shadowed = decide(shadow, attributes, now)
            self.evaluated += 1
            if _outcome(shadowed) != _outcome(enforced):
                self._differ(active, shadow, attributes, now, enforced, shadowed, decision_id)
        except Exception as exc:
            self.errors += 1
            _failed(decision_id, exc)

    def _snapshot(self) -> Snapshot:
        """The shadow bundle, with the runtime lockdowns of the active store merged in.

        Runtime lockdowns apply to whichever version is served, so they would
        apply to this one too; without them every request a lockdown denies
        would be reported as widened.
        """
        snapshot = self.store.current
        runtime = self._active.lockdowns
        if not runtime:
            return snapshot
        merged = self._merged
        if merged is None or merged[0] is not snapshot or merged[1] is not runtime:
            extra = tuple(entry.lockdown for entry in runtime)
            combined = dataclasses.replace(snapshot, lockdowns=snapshot.lockdowns + extra)
            merged = self._merged = (snapshot, runtime, combined)
        return merged[2]

    def _differ(
        self,
        active: Snapshot,
        shadow: Snapshot,
        attributes: RequestAttributes,
        now: datetime,
        enforced: Decision,
        shadowed: Decision,
        decision_id: str,
    ) -> None:
        self.differences += 1
        if shadowed.allowed and not enforced.allowed:
            self.widened += 1
            kind, level = "widened", logging.WARNING
        elif enforced.allowed and not shadowed.allowed:
            self.narrowed += 1
            kind, level = "narrowed", logging.INFO
        else:
            kind, level = "changed", logging.INFO
        record = {
            "event": "shadow_difference",
            "kind": kind,
            "decision_id": decision_id,
            "request": _summary(attributes, now, (active, shadow)),
            "active": _decision(enforced, active.version),
            "shadow": _decision(shadowed, shadow.version),
        }
        # json.dumps escapes control characters: a request cannot break the line.
        _log.log(level, "%s", json.dumps(record, separators=(",", ":")))
        if self.record is not None:
            self.record({"type": "shadow_difference", "time": rfc3339(now), **record})


def _outcome(decision: Decision) -> tuple[bool, int, object, str | None]:
    return decision.allowed, decision.status, decision.reason, decision.rule


def _decision(decision: Decision, version: str) -> dict[str, Any]:
    return {
        "allowed": decision.allowed,
        "status": decision.status,
        "reason": decision.reason.value,
        "rule": decision.rule,
        "tenant": decision.tenant,
        "policy_version": version,
    }


def _summary(
    attributes: RequestAttributes, now: datetime, snapshots: tuple[Snapshot, ...]
) -> dict[str, str]:
    """Who asked for what, without the query, the token, cookies or any other header."""
    http = attributes.http
    subject = tenant = ""
    if http is not None:
        token = _token(http.headers, now, snapshots)
        if token is not None:
            subject, tenant = token.subject, token.tenant
    return {
        "method": http.method if http else "",
        "host": http.host if http else "",
        "path": http.path if http else "",
        "source_principal": attributes.source.principal,
        "token_subject": subject,
        "token_tenant": tenant,
    }


def _token(headers: Any, now: datetime, snapshots: tuple[Snapshot, ...]) -> Token | None:
    """The verified token, by the first bundle that accepts it (both cache verifications)."""
    for snapshot in snapshots:
        raw = extract_token(headers, snapshot.token_sources)
        if raw is not None:
            verified = snapshot.tokens.verify(raw, now.timestamp())
            if isinstance(verified, Token):
                return verified
    return None


def _failed(decision_id: str, exc: Exception) -> None:
    """Where it failed, without the exception's message: it could quote request data."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{f.name} ({f.filename}:{f.lineno})" for f in reversed(frames))
    _log.error(
        "shadow evaluation failed for decision %s (the response was not affected): %s at %s",
        decision_id,
        type(exc).__name__,
        where,
    )


async def open_shadow(
    directory: Path,
    active: SnapshotStore,
    *,
    loader: Callable[[Path], Snapshot],
    watch: bool,
    debounce: float,
) -> tuple[Shadow, Reloader] | None:
    """The shadow bundle in ``directory`` and its reloader, watching it if ``watch``.

    None when the bundle cannot be loaded: its errors are logged and the server
    runs without a shadow. Nothing here stops the server.
    """
    directory_watch = await _watch(directory) if watch and directory.is_dir() else None
    try:
        initial = loader(directory)
    except Exception as exc:
        if isinstance(exc, BundleError):
            summary = f"{len(exc.errors)} bundle error(s)"
        else:
            summary = f"{type(exc).__name__}: {exc}"
        _log.error("shadow bundle %s not loaded (%s): running without shadow", directory, summary)
        for error in exc.errors if isinstance(exc, BundleError) else ():
            _log.error("  %s", error)
        if directory_watch is not None:
            await directory_watch.close()
        return None
    store = SnapshotStore(initial, history_limit=1, bundle_dir=directory, loader=loader)
    reloader = Reloader(store, directory, loader=loader, debounce=debounce, watch=directory_watch)
    _log.info("shadow bundle %s: version %s, never enforced", directory, initial.version)
    return Shadow(store, active), reloader


async def _watch(directory: Path) -> DirectoryWatch | None:
    watch = DirectoryWatch(directory)
    try:
        await watch.start()
    except WatchError as exc:
        _log.error("%s; the shadow bundle is reloaded on SIGHUP only", exc)
        return None
    return watch
