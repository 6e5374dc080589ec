"""Hot reload: the bundle directory watched, SIGHUP, and reloads that never pause Check.

A reload loads, validates and compiles the bundle on a worker thread, so the
event loop keeps answering Check meanwhile. A valid bundle is offered to the
:class:`~authz.store.SnapshotStore` (which applies it unless a rollback pinned
another version); an invalid one is logged error by error, with positions, and
the last good snapshot keeps serving. Requests to reload are debounced: a burst
of writes (a git checkout, a ConfigMap update) becomes one reload.

The directory is watched, not its files: Kubernetes updates a ConfigMap volume
by swapping its ``..data`` symlink, and editors save by writing a new file and
renaming it over the old one; a watch on the old file would see neither. The
watch is in place before the bundle is first loaded, so no change can fall
between the load and the watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from watchfiles import awatch

from authz.errors import AuthzError, BundleError, PolicyError
from authz.policy.bundle import Snapshot, load_bundle
from authz.store import SnapshotStore

__all__ = ["DirectoryWatch", "Reloader", "WatchError", "exempt_from_gc"]

_log = logging.getLogger("authz.reload")
# watchfiles logs every batch of changes at INFO; the reload it causes is logged here.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

_WATCH_STEP_MS = 50  # how long watchfiles waits for more changes before reporting a batch
# How often the watch thread reports "nothing changed"; the first report proves it is watching.
_WATCH_TIMEOUT_MS = 100
_WATCH_START_S = 10.0
_MAX_SETTLE_S = 2.0  # a directory that never stops changing is still reloaded this often
_RETRY_S = 1.0  # before watching again after the watch failed (e.g. the directory vanished)
_LOAD_SWITCH_INTERVAL_S = 0.0005  # the GIL switch interval while a bundle compiles


def exempt_from_gc() -> None:
    """Put every object alive now (the snapshots above all) out of the cyclic GC's reach.

    A compiled bundle is a quarter of a million long-lived objects per 10,000
    rules, and the history keeps up to 20 of them: a full collection walks them
    all holding the GIL, and stalls every Check for ~110 ms per such snapshot
    (2 s with a full history; Envoy times out long before). Snapshots hold no
    reference cycles (a test keeps it so), so one dropped from the history is
    still freed, by reference counting.
    """
    gc.freeze()


@contextlib.contextmanager
def _short_switch_interval() -> Iterator[None]:
    """Let the event loop take the GIL back sooner while a bundle compiles.

    The compile runs on a worker thread but holds the GIL; with Python's default
    5 ms switch interval a Check can wait that long for every slice the
    compiler gets. A 0.5 ms interval while loading keeps Check's tail short.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, _LOAD_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class WatchError(AuthzError):
    """The bundle directory cannot be watched (``--no-watch`` and SIGHUP still work)."""


class DirectoryWatch:
    """Changes below a directory (recursively), from the moment :meth:`start` returns.

    ``changed`` is set on every batch of changes and stays set until consumed, so
    nothing that happens before the reloader runs is lost.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching; return once the watch is in place, or raise :class:`WatchError`."""
        live = asyncio.Event()
        self._task = task = asyncio.create_task(self._run(live), name="authz-watch")
        waiting = asyncio.create_task(live.wait())
        try:
            await asyncio.wait(
                {task, waiting}, timeout=_WATCH_START_S, return_when="FIRST_COMPLETED"
            )
        finally:
            waiting.cancel()
        if live.is_set():
            return
        if task.done() and not task.cancelled():
            failure = task.exception()
            raise WatchError(f"cannot watch {self.directory}: {failure}") from failure
        await self.close()
        raise WatchError(f"cannot watch {self.directory}: not watching after {_WATCH_START_S:g} s")

    async def close(self) -> None:
        """Stop watching."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, live: asyncio.Event) -> None:
        while True:
            restarted = live.is_set()
            try:
                async for changes in awatch(
                    self.directory,
                    step=_WATCH_STEP_MS,
                    rust_timeout=_WATCH_TIMEOUT_MS,
                    yield_on_timeout=True,
                ):
                    if changes or restarted:  # restarted: changes made while not watching
                        self.changed.set()
                        restarted = False
                    live.set()
            except Exception as exc:  # e.g. the directory vanished
                if not live.is_set():
                    raise
                _log.error(
                    "watching %s failed (%s: %s); retrying in %.0f s, SIGHUP still reloads",
                    self.directory,
                    type(exc).__name__,
                    exc,
                    _RETRY_S,
                )
            await asyncio.sleep(_RETRY_S)


class Reloader:
    """Reloads the bundle in ``bundle_dir`` into ``store`` on request (SIGHUP) and on
    every change ``watch`` reports.

    ``successes`` and ``failures`` count finished reloads (an unchanged bundle
    is a success); ``last_errors`` holds the errors of the last failed one.
    """

    def __init__(
        self,
        store: SnapshotStore,
        bundle_dir: Path,
        *,
        loader: Callable[[Path], Snapshot] = load_bundle,
        debounce: float = 0.2,
        watch: DirectoryWatch | None = None,
    ) -> None:
        self.store = store
        self.bundle_dir = bundle_dir
        self.watch = watch
        self.successes = 0
        self.failures = 0
        self.last_errors: tuple[PolicyError, ...] = ()
        self._loader = loader
        self._debounce = debounce
        self._wanted = asyncio.Event()
        self._causes: set[str] = set()  # why reloads were requested since the last one
        self._one_at_a_time = asyncio.Lock()

    def request(self, cause: str = "requested") -> None:
        """Reload once requests have stopped for the debounce period; ``cause`` is logged."""
        self._causes.add(cause)
        self._wanted.set()

    async def run(self) -> None:
        """Serve reload requests and follow the watch until cancelled; then close the watch."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._reload_on_request())
                if self.watch is not None:
                    tasks.create_task(self._follow(self.watch))
        finally:
            if self.watch is not None:
                await self.watch.close()

    async def reload_now(self, cause: str = "requested") -> bool:
        """Load the bundle now, without debounce; True if it was valid (and offered).

        Whether it was applied: :attr:`SnapshotStore.active_version` (not when
        pinned, nothing new when unchanged). On False, ``last_errors`` has the
        bundle errors (empty if the files could not even be read).
        """
        async with self._one_at_a_time:
            active = self.store.active_version
            started = time.perf_counter()
            try:
                with _short_switch_interval():
                    snapshot, applied = await asyncio.to_thread(self._load_and_offer)
            except BundleError as exc:
                self._failed(exc.errors, f"{len(exc.errors)} bundle error(s)", active, cause)
                return False
            except Exception as exc:  # e.g. a file removed while it was being read
                self._failed((), f"{type(exc).__name__}: {exc}", active, cause)
                return False
            self.successes += 1
            self.last_errors = ()
            took_ms = (time.perf_counter() - started) * 1000
            if applied:
                _log.info(
                    "reloaded %s (%s): version %s in %.0f ms (%d rules), was %s",
                    self.bundle_dir,
                    cause,
                    snapshot.version,
                    took_ms,
                    len(snapshot.rules.rules),
                    active,
                )
            elif snapshot.version == self.store.active_version:
                _log.info(
                    "reloaded %s (%s): unchanged, version %s",
                    self.bundle_dir,
                    cause,
                    snapshot.version,
                )
            else:
                _log.warning(
                    "reloaded %s (%s): version %s not applied, pinned to %s",
                    self.bundle_dir,
                    cause,
                    snapshot.version,
                    self.store.pinned,
                )
            return True

    def _load_and_offer(self) -> tuple[Snapshot, bool]:
        """On a worker thread: load, then offer (the store may copy the files)."""
        snapshot = self._loader(self.bundle_dir)
        applied = self.store.offer(snapshot)
        exempt_from_gc()
        return snapshot, applied

    def _failed(
        self, errors: tuple[PolicyError, ...], summary: str, active: str, cause: str
    ) -> None:
        self.failures += 1
        self.last_errors = errors
        _log.error(
            "reload of %s (%s) failed (%s): still serving version %s",
            self.bundle_dir,
            cause,
            summary,
            active,
        )
        for error in errors:
            _log.error("  %s", error)
        if self.store.events is not None:
            self.store.events.emit(
                "reload_failed",
                bundle=str(self.bundle_dir),
                cause=cause,
                problem=summary,
                serving=active,
            )

    async def _reload_on_request(self) -> None:
        while True:
            await self._wanted.wait()
            await self._settle()
            causes = ", ".join(sorted(self._causes))
            self._causes.clear()
            await self.reload_now(causes)

    async def _settle(self) -> None:
        """Return once no request came for the debounce period (or after ``_MAX_SETTLE_S``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(_MAX_SETTLE_S, self._debounce)
        while True:
            self._wanted.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._wanted.wait(), min(self._debounce, remaining))
            except TimeoutError:
                return

    async def _follow(self, watch: DirectoryWatch) -> None:
        while True:
            await watch.changed.wait()
            watch.changed.clear()
            self.request("changed on disk")
