"""What a Check decided, for whoever records it: decision log, metrics, traces.

The server hands each observer one :class:`Checked` per Check, after the
response is encoded and before it is returned. Observers run on the event loop
thread, on the request path: they must be quick (put the record in a bounded
queue, bump a counter), must not block, and must never raise — an observer
that raises is logged and skipped, and the response stays what it was.

What happens off the request path (a lockdown, a rollback, a failed reload, an
identity provider that cannot be reached) is reported by its owner to an
:class:`EventSink`, when one is given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Protocol

from authz.decision import Decision
from authz.request import RequestAttributes

__all__ = ["Checked", "EventSink", "Observer"]


class Checked(NamedTuple):
    """One answered Check."""

    decision: Decision
    decision_id: str
    policy_version: str
    #: The request as decided; None when it could not even be read (then the
    #: decision is internal_error).
    attributes: RequestAttributes | None
    now: datetime  # the evaluation time, also the decision's timestamp
    started_ns: int  # time.perf_counter_ns() when the call began deciding
    duration_ns: int  # deciding and encoding the response
    cached: bool = False  # answered from the decision cache


class Observer(Protocol):
    """Receives every answered Check."""

    def checked(self, event: Checked) -> None: ...


class EventSink(Protocol):
    """Receives security events (see :mod:`authz.audit.events`), from any thread.

    ``emit`` must not block and must not raise; ``fields`` carry no secrets.
    """

    def emit(self, event: str, **fields: Any) -> None: ...
