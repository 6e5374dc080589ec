"""A bounded queue of records and the thread that serialises and writes them.

Check only appends to the queue (a deque: no lock, no I/O, no serialising);
the writer thread turns records into JSON lines and writes them. Records come
in two classes: *sheddable* ones (allows) may use ``shed_limit`` places and are
dropped (and counted) beyond that; *kept* ones (denies, shadow differences,
security events) may use ``shed_limit + kept_reserve`` places, so a flood of
allows can never crowd them out. Should even the reserve overflow, the loss is
counted and, as soon as the writer catches up, written into the stream itself
as one ``records_lost`` line and logged as an error: never lost silently.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

__all__ = ["LineWriter", "Lines", "rfc3339"]

_log = logging.getLogger("authz.audit")
_POLL_SECONDS = 0.05  # how long a record may wait before the writer wakes for it
_BATCH = 1024  # records written between flushes


class Lines(Protocol):
    """Where lines go (:mod:`authz.audit.lines`)."""

    def write(self, text: str) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def _line(record: dict[str, Any]) -> str:
    """One JSON line (UTF-8 text, not ASCII-escaped)."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode()


def rfc3339(moment: datetime) -> str:
    """UTC, milliseconds, ``Z``: ``2026-06-01T12:00:00.123Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LineWriter:
    """Writes what :meth:`offer` queues, through ``render`` (record → dict), to ``lines``.

    Counters, for export: ``written`` lines, ``shed_dropped`` and ``kept_dropped``
    records, ``errors`` (records that could not be rendered, writes that failed).
    """

    def __init__(
        self,
        lines: Lines,
        render: Callable[[Any], dict[str, Any]],
        *,
        name: str,
        shed_limit: int,
        kept_reserve: int,
    ) -> None:
        self.written = 0
        self.shed_dropped = 0
        self.kept_dropped = 0
        self.errors = 0
        self._lines = lines
        self._render = render
        self._queue: deque[Any] = deque()
        self._shed_limit = shed_limit
        self._kept_limit = shed_limit + kept_reserve
        self._reported = (0, 0)  # the losses already written as records_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, record: Any, *, kept: bool) -> None:
        """Queue ``record``; never blocks. Thread-safe (deque appends are atomic)."""
        if len(self._queue) >= (self._kept_limit if kept else self._shed_limit):
            if kept:
                self.kept_dropped += 1
            else:
                self.shed_dropped += 1
            return
        self._queue.append(record)

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued so far, flush, close the output. Blocks: call it
        from a worker thread when on an event loop."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            _log.error("%s: not drained within %.0f s", self._thread.name, timeout)
        self._lines.close()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(_POLL_SECONDS)
            while self._queue:
                self._write_batch()
            self._report_losses()
            if stopping:
                return

    def _write_batch(self) -> None:
        queue, render = self._queue, self._render
        parts: list[str] = []
        for _ in range(min(len(queue), _BATCH)):
            record = queue.popleft()
            try:
                parts.append(_line(render(record)))
            except Exception as exc:  # the message could quote request data: type only
                self.errors += 1
                _log.error("audit record not written: %s", type(exc).__name__)
        self._emit(parts)

    def _report_losses(self) -> None:
        lost = (self.kept_dropped, self.shed_dropped)
        if lost == self._reported:
            return
        kept, shed = lost[0] - self._reported[0], lost[1] - self._reported[1]
        self._reported = lost
        record: dict[str, Any] = {"type": "records_lost", "time": rfc3339(datetime.now(UTC))}
        record |= {"kept": kept, "sheddable": shed}
        if kept:
            _log.error(
                "%s: %d kept (deny/event) record(s) lost: queue full", self._thread.name, kept
            )
        self._emit([_line(record)])

    def _emit(self, parts: list[str]) -> None:
        if not parts:
            return
        try:
            for part in parts:
                self._lines.write(part)
            self._lines.flush()
        except Exception as exc:  # a full disk must not stop the writer
            self.errors += 1
            _log.error("%s: write failed: %s", self._thread.name, type(exc).__name__)
            return
        self.written += len(parts)
