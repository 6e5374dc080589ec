"""Audit: the decision log, security events and their webhook, set up together.

:meth:`Audit.open` starts the outputs the configuration asks for (nothing when
it asks for none); :meth:`Audit.observers` gives the server what to hand each
answered Check to; :meth:`Audit.close` drains and closes everything.
"""

from __future__ import annotations

from pathlib import Path

from authz.audit.config import AuditConfig
from authz.audit.decisionlog import DecisionLog
from authz.audit.events import BurstWatch, SecurityEvents
from authz.audit.lines import open_lines
from authz.audit.webhook import Webhook
from authz.audit.writer import Lines, LineWriter
from authz.config import ConfigError
from authz.observe import Observer
from authz.store import SnapshotStore

__all__ = ["Audit", "AuditConfig", "DecisionLog", "SecurityEvents"]

_EVENTS_QUEUE = 10_000


class Audit:
    """The running audit outputs; attributes are None when off."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self.decision_log: DecisionLog | None = None
        self.webhook: Webhook | None = None
        self.events_stream: LineWriter | None = None
        self.events: SecurityEvents | None = None

    @classmethod
    def open(cls, config: AuditConfig) -> Audit:
        """Open the security events outputs (files now, so a bad path stops the start).

        The decision log is opened by :meth:`observers`, once the store exists."""
        audit = cls(config)
        if config.security_events is not None:
            lines = _open(
                "security-events", config.security_events, config.max_bytes, config.backups
            )
            audit.events_stream = LineWriter(
                lines,
                dict,
                name="authz-security-events",
                shed_limit=0,
                kept_reserve=_EVENTS_QUEUE,
            )
        if config.webhook is not None:
            audit.webhook = Webhook(config.webhook, _token(config.webhook_token_file))
        outputs = tuple(o for o in (audit.events_stream, audit.webhook) if o is not None)
        if outputs:
            audit.events = SecurityEvents(outputs)
        return audit

    def observers(self, store: SnapshotStore) -> tuple[Observer, ...]:
        """What each answered Check is handed to: the decision log, the burst watch."""
        config, found = self.config, list[Observer]()
        if config.decision_log is not None:
            _check_headers(config.log_headers, store)
            lines = _open("decision-log", config.decision_log, config.max_bytes, config.backups)
            self.decision_log = DecisionLog(
                lines,
                store,
                log_headers=config.log_headers,
                queue_allows=config.queue_allows,
                queue_denies=config.queue_denies,
            )
            found.append(self.decision_log)
        if self.events is not None:
            found.append(
                BurstWatch(
                    self.events,
                    threshold=config.burst_threshold,
                    window_seconds=config.burst_window_seconds,
                )
            )
        return tuple(found)

    def close(self) -> None:
        """Drain and close every output (blocking: from a worker thread on a loop)."""
        for output in (self.decision_log, self.events_stream, self.webhook):
            if output is not None:
                output.close()


def _open(flag: str, target: str, max_bytes: int | None = None, backups: int = 0) -> Lines:
    try:
        return open_lines(target, max_bytes, backups)
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot open {target}: {exc.strerror}") from None


def _check_headers(names: tuple[str, ...], store: SnapshotStore) -> None:
    tokens = {source.name for source in store.current.token_sources}
    for name in names:
        if name in tokens:
            raise ConfigError(f"log-header: {name!r} carries tokens (an Issuer's fromHeaders)")


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"security-webhook-token-file: {exc.strerror}: {path}") from None
    if not token:
        raise ConfigError(f"security-webhook-token-file: {path} is empty")
    return token
