"""Server configuration: one frozen dataclass, read once by the CLI, validated on creation."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_LISTEN",
    "MAX_DECISION_CACHE_ENTRIES",
    "MAX_DECISION_CACHE_TTL_SECONDS",
    "MAX_RELOAD_DEBOUNCE_SECONDS",
    "ConfigError",
    "FetchSettings",
    "ServerConfig",
    "TelemetrySettings",
]

DEFAULT_LISTEN = "127.0.0.1:9191"
MAX_RELOAD_DEBOUNCE_SECONDS = 60.0
MAX_DECISION_CACHE_TTL_SECONDS = 60.0
MAX_DECISION_CACHE_ENTRIES = 10_000_000
_SPIFFE = "spiffe://"


class ConfigError(ValueError):
    """A setting that cannot work; the message starts with the setting's name."""


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """How remote issuer keys (jwksUri, discovery) are fetched and refreshed."""

    timeout_seconds: float = 5.0  # a whole HTTP exchange, connect to last byte
    max_bytes: int = 256 * 1024  # a larger response is refused unread
    refresh_seconds: float = 300.0  # when the response says nothing about caching
    min_refresh_seconds: float = 60.0  # Cache-Control max-age is clamped to these bounds
    max_refresh_seconds: float = 3600.0
    cooldown_seconds: float = 30.0  # between refreshes asked for by unknown kids
    kid_wait_seconds: float = 0.1  # how long a request may wait for such a refresh

    def check(self) -> None:
        """Raise ConfigError for settings that cannot work."""
        if not 0 < self.timeout_seconds <= 60:
            raise ConfigError("jwks-timeout: must be more than 0 and at most 60 seconds")
        if not 1024 <= self.max_bytes <= 16 * 1024 * 1024:
            raise ConfigError("jwks-max-bytes: must be between 1 KiB and 16 MiB")
        if not 1 <= self.min_refresh_seconds <= self.max_refresh_seconds:
            raise ConfigError("jwks-min-refresh: must be at least 1 s and at most jwks-max-refresh")
        if not self.min_refresh_seconds <= self.refresh_seconds <= self.max_refresh_seconds:
            raise ConfigError("jwks-refresh: must be within jwks-min-refresh and jwks-max-refresh")
        if self.cooldown_seconds < 0:
            raise ConfigError("jwks-cooldown: must not be negative")
        if not 0 <= self.kid_wait_seconds <= self.timeout_seconds:
            raise ConfigError("jwks-kid-wait: must be between 0 and jwks-timeout")


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """Metrics and traces (docs/observability.md)."""

    # A listener serving only GET /metrics, without authentication; None: none (the
    # admin API serves /metrics to its authenticated callers either way).
    metrics_listen: str | None = None
    # Label Check counts with the first N tenants seen (later ones: "other"); 0: no label.
    metrics_tenant_label: int = 0
    # Send a span per Check over OTLP/gRPC to this http(s)://HOST:PORT; None: no tracing.
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = 1.0  # of Checks whose caller sent no sampling decision

    def check(self) -> None:
        """Raise ConfigError for settings that cannot work."""
        if self.metrics_listen is not None:
            _check_address("metrics-listen", self.metrics_listen)
        if not 0 <= self.metrics_tenant_label <= 1000:
            raise ConfigError("metrics-tenant-label: must be between 0 and 1000 tenants")
        if self.otlp_endpoint is not None:
            scheme, _, rest = self.otlp_endpoint.partition("://")
            host, _, port = rest.rstrip("/").rpartition(":")
            if scheme not in ("http", "https") or not host or not port.isdigit():
                raise ConfigError(
                    f"otlp-endpoint: expected http(s)://HOST:PORT, got {self.otlp_endpoint!r}"
                )
        if not 0 <= self.trace_sample_ratio <= 1:
            raise ConfigError("trace-sample-ratio: must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `authz serve` needs."""

    policies: Path
    listen: str = DEFAULT_LISTEN
    grace_seconds: float = 5.0
    token_cache_size: int = 10_000
    max_token_bytes: int = 16_384  # a longer token is refused before any parsing or crypto
    keys: FetchSettings = FetchSettings()
    state_dir: Path | None = None  # history, pin and runtime lockdowns kept here; None: not kept
    watch: bool = True  # reload when the bundle directory changes (SIGHUP reloads either way)
    reload_debounce_seconds: float = 0.2
    # A candidate bundle decided next to the active one and never enforced; None: no shadow.
    shadow_policies: Path | None = None
    # gRPC over mTLS (all three or none), re-read when they change on disk; None: plaintext.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    # SPIFFE IDs that may call Check (a trailing /* matches a prefix); empty: any client cert.
    allow_clients: tuple[str, ...] = ()
    telemetry: TelemetrySettings = TelemetrySettings()
    # Share the Check port with other processes (SO_REUSEPORT): what `--workers` runs.
    reuse_port: bool = False
    # Keep up to this many recent decisions (docs/decision-cache.md); 0: no cache at all.
    decision_cache: int = 0
    decision_cache_ttl_seconds: float = 1.0  # an entry's longest life

    def __post_init__(self) -> None:
        self._check_tls()
        _check_address("listen", self.listen)
        self.telemetry.check()
        if self.grace_seconds < 0:
            raise ConfigError("grace: must not be negative")
        if self.token_cache_size < 0:
            raise ConfigError("token-cache-size: must not be negative")
        if not 256 <= self.max_token_bytes <= 1024 * 1024:
            raise ConfigError("max-token-bytes: must be between 256 and 1048576")
        self.keys.check()
        if not 0 <= self.decision_cache <= MAX_DECISION_CACHE_ENTRIES:
            raise ConfigError(
                f"decision-cache: must be between 0 (off) and {MAX_DECISION_CACHE_ENTRIES} entries"
            )
        if not 0 < self.decision_cache_ttl_seconds <= MAX_DECISION_CACHE_TTL_SECONDS:
            raise ConfigError(
                "decision-cache-ttl: must be more than 0 and at most "
                f"{MAX_DECISION_CACHE_TTL_SECONDS:g} seconds"
            )
        if not 0 <= self.reload_debounce_seconds <= MAX_RELOAD_DEBOUNCE_SECONDS:
            raise ConfigError(
                f"reload-debounce: must be between 0 and {MAX_RELOAD_DEBOUNCE_SECONDS:g} seconds"
            )
        if self.state_dir is not None:
            state, policies = self.state_dir.resolve(), self.policies.resolve()
            # Inside the bundle, the kept copies of old versions would be loaded as policy.
            if state == policies or policies in state.parents:
                raise ConfigError("state-dir: must not be inside the policies directory")
            if state in policies.parents:
                raise ConfigError("state-dir: must not contain the policies directory")
            if self.shadow_policies is not None:
                shadow = self.shadow_policies.resolve()
                if state == shadow or shadow in state.parents:
                    raise ConfigError("state-dir: must not be inside the shadow policies directory")

    def _check_tls(self) -> None:
        given = [path is not None for path in (self.tls_cert, self.tls_key, self.client_ca)]
        if any(given) and not all(given):
            raise ConfigError("tls-cert, tls-key, client-ca: give all three (mTLS) or none")
        if self.allow_clients and not all(given):
            raise ConfigError(
                "allow-client: needs tls-cert, tls-key and client-ca; without client "
                "certificates there is no identity to allow"
            )
        for entry in self.allow_clients:
            _check_client_id(entry)


def _check_address(setting: str, listen: str) -> None:
    """``listen`` is HOST:PORT with an IP address (or localhost) and a port number."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{setting}: expected HOST:PORT, got {listen!r}")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if host != "localhost":
            raise ConfigError(f"{setting}: {host!r} is not an IP address") from None


def _check_client_id(entry: str) -> None:
    """A SPIFFE ID ``spiffe://TRUST-DOMAIN/PATH``, or a prefix of IDs ending in ``/*``."""
    body = entry.removeprefix(_SPIFFE)
    stem = body.removesuffix("/*")
    domain, _, path = stem.partition("/")
    if (
        not entry.startswith(_SPIFFE)
        or not domain
        or (stem == body and not path)
        or "*" in stem
        or any(char.isspace() for char in entry)
    ):
        raise ConfigError(
            f"allow-client: {entry!r} is neither a SPIFFE ID (spiffe://TRUST-DOMAIN/PATH) nor "
            "a prefix of one ending in /* (spiffe://cluster.local/ns/istio-system/*)"
        )
