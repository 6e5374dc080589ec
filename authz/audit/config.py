"""Audit settings: the decision log, the security events stream and its webhook.

One frozen dataclass, part of :class:`authz.config.ServerConfig`, validated on
creation like the rest of the configuration.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from authz.config import ConfigError

__all__ = ["NEVER_LOGGED", "STDOUT", "AuditConfig"]

STDOUT = "-"
#: Headers that carry credentials: refused by --log-header whatever the bundle says.
#: (Headers a bundle's Issuers read tokens from are refused too, see DecisionLog.)
NEVER_LOGGED = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Where decisions and security events go; everything off by default."""

    decision_log: str | None = None  # "-": stdout; a path: a size-rotated file; None: off
    max_bytes: int = 100 * 1024 * 1024  # rotate the decision log file past this size
    backups: int = 5  # rotated files kept (PATH.1 … PATH.N)
    log_headers: tuple[str, ...] = ()  # request headers copied into each record (lower-case)
    queue_allows: int = 10_000  # allow records waiting to be written; more are dropped, counted
    queue_denies: int = 10_000  # capacity reserved for deny (and shadow) records
    security_events: str | None = None  # "-" or a path (rotated like the decision log); None: off
    webhook: str | None = None  # security events are also POSTed here
    webhook_token_file: Path | None = None  # a bearer token for the webhook
    burst_threshold: int = 20  # invalid_token / revoked from one source within the window
    burst_window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_bytes < 1024:
            raise ConfigError("decision-log-max-bytes: must be at least 1024")
        if not 0 <= self.backups <= 1000:
            raise ConfigError("decision-log-backups: must be between 0 and 1000")
        if self.queue_allows < 1 or self.queue_denies < 1:
            raise ConfigError("decision-log queue sizes: must be at least 1")
        for name in self.log_headers:
            _check_header(name)
        if self.burst_threshold < 1 or self.burst_window_seconds <= 0:
            raise ConfigError("security-burst: threshold at least 1, window more than 0 s")
        if self.webhook is not None:
            _check_webhook(self.webhook)
        elif self.webhook_token_file is not None:
            raise ConfigError("security-webhook-token-file: needs --security-webhook")

    @property
    def on(self) -> bool:
        """Whether anything is recorded at all."""
        return (
            self.decision_log is not None or self.security_events is not None or bool(self.webhook)
        )


def _check_header(name: str) -> None:
    if name != name.lower() or not name or any(c.isspace() or c == ":" for c in name):
        raise ConfigError(f"log-header: {name!r} must be a lower-case header name")
    if name in NEVER_LOGGED:
        # Credentials in a log are credentials for whoever reads the log.
        raise ConfigError(f"log-header: {name!r} carries credentials and is never logged")


def _check_webhook(url: str) -> None:
    """https, or http to a loopback address only: events name subjects and sources."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"security-webhook: {url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigError("security-webhook: no credentials in the URL (use the token file)")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError("security-webhook: plain http only to a loopback address; use https")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
