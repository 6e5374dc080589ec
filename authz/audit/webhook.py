"""Security events POSTed as JSON to a webhook, from a thread of its own.

Bounded: at most ``capacity`` events wait; more are dropped and counted. Each
event is tried up to ``attempts`` times, waiting ``first_retry`` seconds, then
twice as long each time (at most ``max_retry``); an event that still fails is
counted in ``failed`` and logged, and the next one is tried. Nothing here is
on the request path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import ssl
import threading
import urllib.request
from typing import Any

__all__ = ["Webhook"]

_log = logging.getLogger("authz.audit")
_STOP = object()


class Webhook:
    """POSTs each offered event to ``url`` (``Authorization: Bearer token`` if given).

    Counters: ``sent``, ``dropped`` (queue full, or still queued at close), ``failed``
    (every attempt failed), ``retries``.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        capacity: int = 1000,
        attempts: int = 5,
        first_retry: float = 0.5,
        max_retry: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.sent = self.dropped = self.failed = self.retries = 0
        self._headers = {"content-type": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._attempts, self._first, self._max, self._timeout = (
            attempts,
            first_retry,
            max_retry,
            timeout,
        )
        self._queue: queue.Queue[Any] = queue.Queue(capacity)
        self._stopping = threading.Event()
        # The process's proxy settings do not apply: events go straight to the receiver.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context()),
        )
        self._thread = threading.Thread(target=self._run, name="authz-webhook", daemon=True)
        self._thread.start()

    def offer(self, record: Any, *, kept: bool = True) -> None:
        """Queue an event; never blocks."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, within ``timeout``; what is left is counted as dropped."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)
        while not self._queue.empty():
            if self._queue.get_nowait() is not _STOP:
                self.dropped += 1

    def _run(self) -> None:
        while (record := self._queue.get()) is not _STOP:
            self._deliver(json.dumps(record).encode())

    def _deliver(self, body: bytes) -> None:
        wait = self._first
        for attempt in range(1, self._attempts + 1):
            try:
                self._post(body)
            except Exception as exc:  # any failure is retried, then counted
                problem = f"{type(exc).__name__}: {getattr(exc, 'code', '') or ''}".rstrip(": ")
                if attempt == self._attempts or self._stopping.is_set():
                    self.failed += 1
                    _log.error("security webhook: event not delivered (%s)", problem)
                    return
                self.retries += 1
                if self._stopping.wait(wait):
                    wait = 0.0
                wait = min(wait * 2, self._max)
            else:
                self.sent += 1
                return

    def _post(self, body: bytes) -> None:
        # S310: the URL's scheme was checked (http or https) by AuditConfig.
        request = urllib.request.Request(self.url, body, self._headers, method="POST")  # noqa: S310
        with self._opener.open(request, timeout=self._timeout):
            pass
