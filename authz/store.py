"""The snapshot store: the one place the active policy snapshot lives.

Everything that changes which policy decides goes through here: a newly loaded
bundle (:meth:`SnapshotStore.offer`), a rollback that pins an older version,
and lockdowns switched on at run time. Each change builds the snapshot that
requests will see (the bundle's, with the runtime lockdowns merged in) once,
and publishes it by swapping one reference: a request reads either the old or
the new snapshot, never a mixture, and pays one attribute read for it.

Methods may be called from the event loop or from worker threads (the
reloader offers from the thread that loaded the bundle); one lock serialises
the changes, readers never take it.

With a state directory (:mod:`authz.statedir`) the history, the pin and the
runtime lockdowns survive a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from authz.policy.bundle import Snapshot, load_bundle
from authz.policy.lockdown import Lockdown
from authz.statedir import RuntimeLockdown, StateDir, StateError, Version

if TYPE_CHECKING:
    from authz.observe import EventSink

__all__ = ["RuntimeLockdown", "SnapshotStore", "StateError", "Version"]

_log = logging.getLogger("authz.store")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SnapshotStore:
    """The active snapshot, the history of loaded versions, the pin and runtime lockdowns.

    ``bundle_dir`` (where offered bundles are read from) lets a state directory
    keep a copy of each version's files, so that a pin and a rollback target
    survive restarts; ``loader`` rebuilds a snapshot from such a copy. Rollbacks,
    unpins and runtime lockdowns are reported to ``events``, if given.
    """

    def __init__(
        self,
        initial: Snapshot,
        *,
        state_dir: Path | None = None,
        history_limit: int = 20,
        clock: Callable[[], datetime] = _utc_now,
        bundle_dir: Path | None = None,
        loader: Callable[[Path], Snapshot] = load_bundle,
        events: EventSink | None = None,
    ) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1")
        self._lock = threading.Lock()
        self._clock = clock
        self._limit = history_limit
        self._loader = loader
        self.events = events
        self._state = StateDir(state_dir, bundle_dir) if state_dir is not None else None
        self._history: tuple[Version, ...] = ()
        self._snapshots: dict[str, Snapshot] = {}  # in memory: the versions of the history
        self._latest = initial  # the newest offered bundle: what unpin applies
        self._active = initial  # the bundle deciding now (the latest, unless pinned)
        self._pinned: str | None = None
        self._runtime: tuple[RuntimeLockdown, ...] = ()
        self._current = initial
        if self._state is None:
            self._record(initial, applied=True)
        else:
            self._restore(initial, self._state)
        self._publish()
        self._persist(initial)

    @property
    def current(self) -> Snapshot:
        """What requests are decided with: the active bundle plus runtime lockdowns."""
        return self._current

    @property
    def active_version(self) -> str:
        """The version of the active bundle."""
        return self._active.version

    @property
    def pinned(self) -> str | None:
        """The version pinned by a rollback, or None."""
        return self._pinned

    @property
    def history(self) -> tuple[Version, ...]:
        """The loaded versions, newest first, at most ``history_limit``."""
        return self._history

    @property
    def lockdowns(self) -> tuple[RuntimeLockdown, ...]:
        """The lockdowns switched on at run time (bundle lockdowns are in the snapshot)."""
        return self._runtime

    def offer(self, snapshot: Snapshot) -> bool:
        """A newly loaded, valid bundle: record it, and apply it unless pinned.

        Returns whether it was applied. The active version offered again is a
        no-op (no new history entry), and so is the newest version while pinned.
        """
        with self._lock:
            version = snapshot.version
            if version == self._active.version:
                if self._pinned is not None and self._latest.version != version:
                    # The files on disk are the pinned version again: unpin keeps it.
                    _log.info("the bundle on disk is the pinned version %s again", version)
                    self._latest = snapshot
                return False
            if version == self._latest.version:
                return False
            self._latest = snapshot
            applied = self._pinned is None
            if applied:
                self._active = snapshot
                self._publish()
            self._record(snapshot, applied=applied)
            self._persist(snapshot)
        if applied:
            _log.info("applied version %s (%d file(s))", version, len(snapshot.files))
        else:
            _log.warning(
                "recorded version %s without applying it: pinned to %s", version, self._pinned
            )
        return applied

    def rollback(self, version: str) -> Snapshot:
        """Re-activate ``version`` from the history and pin it; the snapshot now served.

        A version no longer in memory (after a restart) is rebuilt from the state
        directory's copy of its files, which takes as long as loading a bundle:
        call it through ``asyncio.to_thread`` from an event loop.
        """
        with self._lock:
            snapshot = self._snapshots.get(version)
            known = any(entry.version == version for entry in self._history)
        if snapshot is None:
            if not known:
                listed = ", ".join(entry.version for entry in self._history[:3])
                raise KeyError(
                    f"version {version!r} is not among the last {self._limit} loaded "
                    f"versions (newest: {listed})"
                )
            snapshot = self._rebuild(version)  # slow, so outside the lock
        with self._lock:
            previous = self._active.version
            self._snapshots[version] = snapshot
            self._active = snapshot
            self._pinned = version
            self._publish()
            self._persist()
            current = self._current
        _log.warning(
            "rolled back to %s (was %s) and pinned it: newer bundles are recorded, "
            "not applied, until unpinned",
            version,
            previous,
        )
        if self.events is not None:
            self.events.emit("rollback", version=version, previous=previous)
        return current

    def unpin(self) -> Snapshot:
        """Unpin and apply the newest offered version; the snapshot now served."""
        with self._lock:
            pinned = self._pinned
            if pinned is not None:
                self._pinned = None
                self._active = self._latest
                self._publish()
                self._persist()
            current = self._current
        if pinned is not None:
            _log.warning(
                "unpinned %s: applied the newest loaded version %s", pinned, current.version
            )
            if self.events is not None:
                self.events.emit("unpin", previous=pinned, version=current.version)
        return current

    def lock(self, lockdown: Lockdown, actor: str) -> None:
        """Switch a lockdown on at run time; one of the same name is replaced."""
        with self._lock:
            replaced = any(entry.lockdown.name == lockdown.name for entry in self._runtime)
            kept = self._unexpired(lockdown.name)
            self._runtime = (*kept, RuntimeLockdown(lockdown, actor, self._clock()))
            self._publish()
            self._persist()
        expires = lockdown.expires.isoformat() if lockdown.expires else "never"
        _log.warning(
            "runtime lockdown %r %s by %s: %s (tenant %s, expires %s)",
            lockdown.name,
            "replaced" if replaced else "on",
            actor,
            lockdown.reason,
            lockdown.tenant or "every tenant",
            expires,
        )
        if self.events is not None:
            self.events.emit(
                "lockdown_on",
                name=lockdown.name,
                actor=actor,
                reason=lockdown.reason,
                tenant=lockdown.tenant,
                expires=lockdown.expires.isoformat() if lockdown.expires else None,
            )

    def release(self, name: str, actor: str) -> bool:
        """Switch a runtime lockdown off; False if there is none of that name."""
        with self._lock:
            found = any(entry.lockdown.name == name for entry in self._runtime)
            if found:
                self._runtime = self._unexpired(name)
                self._publish()
                self._persist()
        if found:
            _log.warning("runtime lockdown %r released by %s", name, actor)
            if self.events is not None:
                self.events.emit("lockdown_off", name=name, actor=actor)
        else:
            _log.info("runtime lockdown %r: release by %s, but it is not on", name, actor)
        return found

    def _publish(self) -> None:
        """Build what requests see and swap it in with one assignment."""
        active = self._active
        extra = tuple(entry.lockdown for entry in self._runtime)
        merged = active.lockdowns + extra
        self._current = dataclasses.replace(active, lockdowns=merged) if extra else active

    def _record(self, snapshot: Snapshot, *, applied: bool) -> None:
        entry = Version(snapshot.version, self._clock(), snapshot.files, applied)
        self._history = (entry, *self._history)[: self._limit]
        self._snapshots[snapshot.version] = snapshot
        keep = self._kept_versions()
        for version in [version for version in self._snapshots if version not in keep]:
            del self._snapshots[version]

    def _kept_versions(self) -> set[str]:
        """The history, and the active and newest bundles even when older than it."""
        keep = {entry.version for entry in self._history}
        return keep | {self._active.version, self._latest.version}

    def _unexpired(self, without: str) -> tuple[RuntimeLockdown, ...]:
        """The runtime lockdowns except ``without``; expired ones are dropped here."""
        now = self._clock()
        kept = []
        for entry in self._runtime:
            expires = entry.lockdown.expires
            if expires is not None and now >= expires:
                _log.info("runtime lockdown %r expired at %s", entry.lockdown.name, expires)
            elif entry.lockdown.name != without:
                kept.append(entry)
        return tuple(kept)

    def _persist(self, loaded: Snapshot | None = None) -> None:
        """Write the state (and a copy of a newly ``loaded`` bundle's files), if kept."""
        if self._state is None:
            return
        if loaded is not None:
            self._state.archive(loaded)
        self._state.save(self._history, self._pinned, self._runtime, self._kept_versions())

    def _rebuild(self, version: str) -> Snapshot:
        """A version no longer in memory, from its copy in the state directory."""
        snapshot = None if self._state is None else self._state.rebuild(version, self._loader)
        if snapshot is None:
            raise KeyError(
                f"version {version!r} is in the history but its files were not kept "
                "(no state directory, or no copy of that bundle): it cannot be rebuilt"
            )
        return snapshot

    def _restore(self, initial: Snapshot, state: StateDir) -> None:
        """Take up the saved history, pin and runtime lockdowns; ``initial`` was just loaded."""
        saved = state.load()
        now = self._clock()
        self._history = saved.history[: self._limit]
        for entry in saved.lockdowns:
            expires = entry.lockdown.expires
            if expires is not None and now >= expires:
                _log.info("runtime lockdown %r expired while stopped", entry.lockdown.name)
            else:
                self._runtime = (*self._runtime, entry)
                _log.warning(
                    "runtime lockdown %r (by %s, since %s) restored",
                    entry.lockdown.name,
                    entry.actor,
                    entry.since.isoformat(),
                )
        pinned = saved.pinned
        if pinned is not None and pinned != initial.version:
            snapshot = state.rebuild(pinned, self._loader)
            if snapshot is None:
                _log.error(
                    "pinned version %s cannot be rebuilt (its files were not kept): "
                    "serving the bundle on disk, %s, unpinned",
                    pinned,
                    initial.version,
                )
                pinned = None
            else:
                self._active = snapshot
                self._snapshots[pinned] = snapshot
        self._pinned = pinned
        if pinned is not None:
            _log.warning("pinned version %s restored (bundle on disk: %s)", pinned, initial.version)
        if self._history and self._history[0].version == initial.version:
            self._snapshots[initial.version] = initial
        else:
            self._record(initial, applied=pinned is None or pinned == initial.version)
