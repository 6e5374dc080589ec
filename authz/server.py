"""The gRPC edge: Envoy's Authorization/Check and grpc.health.v1, nothing else.

Bytes in, request attributes, ``decide``, CheckResponse bytes out. Any failure
between the bytes and the decision becomes a deny (``403 internal_error``);
a message that is not a CheckRequest is refused with INVALID_ARGUMENT, which
Envoy (``failure_mode_allow: false``) turns into a denial too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.audit import Audit, AuditConfig
from authz.callers import AllowedClients
from authz.config import ServerConfig
from authz.decision import Decision, Reason, new_decision_id
from authz.decision_cache import DecisionCache, decide_through
from authz.engine import decide
from authz.identity.remote import KeyFetcher
from authz.observe import Checked, EventSink, Observer
from authz.policy.bundle import Snapshot, load_bundle
from authz.reload import DirectoryWatch, Reloader, exempt_from_gc
from authz.request import RequestAttributes, from_check_request
from authz.response import ResponseTemplates, check_response
from authz.shadow import Shadow, open_shadow
from authz.store import SnapshotStore
from authz.tls import CertificateFiles, server_credentials

if TYPE_CHECKING:
    from authz.admin import AdminConfig
    from authz.telemetry import Telemetry

__all__ = ["CHECK_METHOD", "SERVICE_NAME", "AuthorizationService", "Runtime", "run_server"]

SERVICE_NAME = "envoy.service.auth.v3.Authorization"
CHECK_METHOD = f"/{SERVICE_NAME}/Check"
_log = logging.getLogger("authz.server")
_CheckRequest = external_auth_pb2.CheckRequest
_NO_HEADERS: Mapping[str, str] = {}


class AuthorizationService:
    """Answers Check from the store's current snapshot (one reference, swapped whole),
    and hands each answered request to the ``shadow``, if any. With ``allowed``, only
    those clients may call Check.

    With ``keys``, a token whose ``kid`` started (or met) a refresh of its issuer's
    remote keys waits for that refresh up to ``keys.settings.kid_wait_seconds``, and
    is then decided again: a rotated signing key is followed without a single 401.

    With ``cache``, a request decided recently under the same snapshot is answered
    from it (:mod:`authz.decision_cache`); the request attributes are still built
    when an observer or the shadow needs them.
    """

    def __init__(
        self,
        store: SnapshotStore,
        shadow: Shadow | None = None,
        allowed: AllowedClients | None = None,
        keys: KeyFetcher | None = None,
        observers: Sequence[Observer] = (),
        cache: DecisionCache | None = None,
    ) -> None:
        self.store = store
        self.shadow = shadow  # None: the one check Check pays for shadow rollout
        self.allowed = allowed  # None: no per-call cost at all
        self.keys = keys
        self.observers = tuple(observers)  # empty: no per-call cost but one test
        self.responses = ResponseTemplates()
        self.cache = cache  # None: no per-call cost but one test

    async def check(self, payload: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """One Check call, raw bytes both ways so malformed input is ours to answer."""
        try:
            message = _CheckRequest.FromString(payload)
        except DecodeError:
            _log.warning("refused a malformed CheckRequest (%d bytes)", len(payload))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed CheckRequest")
        response = self._respond(message, may_wait=True)
        if isinstance(response, bytes):
            return response
        assert self.keys is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(response), self.keys.settings.kid_wait_seconds)
        return self.respond(message)

    def respond(self, message: Any) -> bytes:
        """Decide ``message``; the serialised CheckResponse. Never raises, never allows on error.

        With a shadow, its decision is scheduled once the response is ready, and
        made after this returns.
        """
        response = self._respond(message, may_wait=False)
        assert isinstance(response, bytes)
        return response

    def _respond(self, message: Any, *, may_wait: bool) -> bytes | asyncio.Future[Any]:
        """:meth:`respond`, or (``may_wait``) the key refresh to await before deciding again."""
        started = time.perf_counter_ns()
        snapshot = self.store.current  # read once: a reload mid-call cannot mix versions
        decision_id = new_decision_id()
        headers: Mapping[str, str] = _NO_HEADERS
        attributes: RequestAttributes | None = None
        now = datetime.now(UTC)
        cached = False
        try:
            if self.cache is None:
                attributes = from_check_request(message)
                if attributes.http is not None and attributes.http.names_ours:
                    headers = attributes.http.headers  # the response removes client-sent x-authz-*
                decision = decide(snapshot, attributes, now)
            else:
                wanted = bool(self.observers) or self.shadow is not None
                decision, attributes, headers, cached = decide_through(
                    self.cache, snapshot, message, now, attributes_wanted=wanted
                )
        except Exception as exc:
            _internal_error("deciding", decision_id, exc)
            decision = Decision(Reason.INTERNAL_ERROR)
        if self.keys is not None and (refresh := self.keys.pending) is not None:
            self.keys.pending = None
            if may_wait and decision.reason is Reason.INVALID_TOKEN:
                return refresh
        if decision.cel_errors:
            _log.warning(
                "decision %s: CEL runtime error in rule(s) %s (failed closed)",
                decision_id,
                ", ".join(decision.cel_errors),
            )
        try:
            response = self.responses.encode(decision, decision_id, snapshot.version, headers)
        except Exception as exc:  # e.g. a claim that cannot be encoded as UTF-8
            _internal_error("encoding the response", decision_id, exc)
            failed = Decision(Reason.INTERNAL_ERROR)
            response = check_response(failed, decision_id, snapshot.version, _NO_HEADERS)
        if self.shadow is not None and attributes is not None:
            self.shadow.submit(snapshot, attributes, now, decision, decision_id)
        if self.observers:
            event = Checked(
                decision,
                decision_id,
                snapshot.version,
                attributes,
                now,
                started,
                time.perf_counter_ns() - started,
                cached,
            )
            for observer in self.observers:
                try:
                    observer.checked(event)
                except Exception as exc:  # recording must never change the answer
                    _internal_error(f"recording ({type(observer).__name__})", decision_id, exc)
        return response

    def handler(self) -> grpc.GenericRpcHandler:
        """A generic handler so deserialisation errors reach :meth:`check`."""
        check = self.check if self.allowed is None else self.allowed.guard(self.check)
        method = grpc.unary_unary_rpc_method_handler(check)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"Check": method})


def _internal_error(stage: str, decision_id: str, exc: Exception) -> None:
    """Log where it failed, without the exception's message: it could quote a
    header or a claim, and tokens never reach the logs."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{f.name} ({f.filename}:{f.lineno})" for f in reversed(frames))
    _log.error(
        "internal error while %s for decision %s (denied): %s at %s",
        stage,
        decision_id,
        type(exc).__name__,
        where,
    )


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a running server is made of, for whoever embeds it (the tests, the admin API).

    ``shadow`` and ``shadow_reloader`` are None unless a shadow bundle was loaded;
    ``telemetry`` is None until the server runs.
    """

    port: int
    store: SnapshotStore
    reloader: Reloader
    keys: KeyFetcher
    shadow: Shadow | None = None
    shadow_reloader: Reloader | None = None
    audit: Audit | None = None  # the decision log, security events and their counters
    telemetry: Telemetry | None = None
    decision_cache: DecisionCache | None = None  # None: off


async def run_server(
    config: ServerConfig,
    ready: Callable[[int], Awaitable[None]] | None = None,
    *,
    started: Callable[[Runtime], Awaitable[None]] | None = None,
    admin: AdminConfig | None = None,
    audit: AuditConfig | None = None,
) -> None:
    """Load the bundle (and the shadow bundle, if any), serve (and reload them) until
    SIGTERM/SIGINT, then drain.

    With ``audit``, decisions and security events are recorded as it says; what is
    queued is written out after the last call has been answered.

    With ``admin``, the admin API runs too (started first: a bad token file stops
    the start before health reports SERVING). Once serving, ``ready(port)`` and
    ``started(runtime)`` are awaited, if given.
    """
    recorders = _open_audit(audit)
    try:
        await _serve(config, ready, started, admin, recorders)
    finally:
        await asyncio.to_thread(recorders.close)
    _log.info("stopped")


def _open_audit(config: AuditConfig | None) -> Audit:
    """The audit outputs asked for; with none, no observer and no per-call cost."""
    return Audit.open(config or AuditConfig())


async def _serve(
    config: ServerConfig,
    ready: Callable[[int], Awaitable[None]] | None,
    started: Callable[[Runtime], Awaitable[None]] | None,
    admin: AdminConfig | None,
    recorders: Audit,
) -> None:
    """:func:`run_server` once the audit outputs are open."""
    parts = await _lifecycle(config, recorders.events)
    reloaders = [r for r in (parts.reloader, parts.shadow_reloader) if r is not None]
    # Each reloader closes its watch when cancelled.
    reloading = [
        asyncio.create_task(r.run(), name=name)
        for r, name in zip(reloaders, ("authz-reload", "authz-shadow-reload"), strict=False)
    ]
    loop = asyncio.get_running_loop()
    admin_api = telemetry = None
    cache = _decision_cache(config)
    try:
        recording = recorders.observers(parts.store)  # opens the decision log, if any
        telemetry = await _telemetry(config, parts, admin is not None, recorders, cache)
        if admin is not None:
            from authz.admin import start_admin  # aiohttp is only needed with an admin API

            admin_api = await start_admin(
                parts.store, parts.reloader, admin, parts.keys, telemetry.metrics, cache
            )
        allowed = AllowedClients(config.allow_clients) if config.allow_clients else None
        observers = (*recording, *telemetry.observers)
        if parts.shadow is not None and recorders.decision_log is not None:
            parts.shadow.record = recorders.decision_log.shadow_difference
        service = AuthorizationService(
            parts.store, parts.shadow, allowed, parts.keys, observers, cache
        )
        server, health, port = await _start_grpc(
            service, config.listen, _credentials(config), reuse_port=config.reuse_port
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, _request_reloads, reloaders)

        _log.info(
            "serving on %s policy_version=%s rules=%d watch=%s state_dir=%s shadow=%s",
            _bound(config.listen, port),
            parts.store.active_version,
            len(parts.store.current.rules.rules),
            "on" if parts.reloader.watch else "off",
            config.state_dir or "none",
            parts.shadow.store.active_version if parts.shadow else "off",
        )
        if ready is not None:
            await ready(port)
        if started is not None:
            await started(
                dataclasses.replace(
                    parts,
                    port=port,
                    audit=recorders,
                    telemetry=telemetry,
                    decision_cache=cache,
                )
            )
        await stop.wait()
        _log.info("stopping: draining in-flight calls for up to %.1fs", config.grace_seconds)
        await health.enter_graceful_shutdown()
        await server.stop(config.grace_seconds)
    finally:
        if admin_api is not None:
            await admin_api.stop()
        if telemetry is not None:
            await telemetry.close()
        await parts.keys.close()
        loop.remove_signal_handler(signal.SIGHUP)
        for task in reloading:
            task.cancel()
        for task in reloading:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _decision_cache(config: ServerConfig) -> DecisionCache | None:
    """The decision cache ``config`` asks for; None when off (no per-call cost)."""
    if not config.decision_cache:
        return None
    _log.info(
        "decision cache: up to %d decisions, each for at most %gs",
        config.decision_cache,
        config.decision_cache_ttl_seconds,
    )
    return DecisionCache(config.decision_cache, config.decision_cache_ttl_seconds)


async def _telemetry(
    config: ServerConfig,
    parts: Runtime,
    admin: bool,
    recorders: Audit,
    cache: DecisionCache | None,
) -> Telemetry:
    """Metrics and traces as ``config.telemetry`` asks (``admin``: /metrics is served there)."""
    from authz.telemetry import start_telemetry  # OpenTelemetry is only needed when serving

    return await start_telemetry(
        config.telemetry,
        parts.store,
        parts.reloader,
        keys=parts.keys,
        shadow=parts.shadow,
        admin=admin,
        decision_log=recorders.decision_log,
        decision_cache=cache,
    )


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """mTLS credentials when configured (ConfigError if the files cannot serve), else None."""
    if config.tls_cert is None or config.tls_key is None or config.client_ca is None:
        _log.info("tls: off, plaintext gRPC (give --tls-cert, --tls-key and --client-ca for mTLS)")
        return None
    allowed = len(config.allow_clients)
    listed = f"{allowed} client ID(s)" if allowed else "off (any certificate from the client CA)"
    _log.info("tls: mTLS, client certificates required; allow-list: %s", listed)
    return server_credentials(CertificateFiles(config.tls_cert, config.tls_key, config.client_ca))


def _request_reloads(reloaders: list[Reloader]) -> None:
    """SIGHUP: reload the bundle and the shadow bundle."""
    for reloader in reloaders:
        reloader.request("SIGHUP")


async def _lifecycle(config: ServerConfig, events: EventSink | None = None) -> Runtime:
    """The store holding the loaded bundle, and its reloader, already watching if on;
    the same for the shadow bundle, if one is configured and valid (port: not yet known).

    The watch starts before the first load, so no change can slip in between. A
    missing directory is left to the load, which reports it as a bundle error.
    """
    keys = KeyFetcher(config.keys, events)
    await keys.start()

    def load(directory: Path) -> Snapshot:
        """Load a bundle; on a worker thread, also wait for its new remote keys' first fetch."""
        snapshot = load_bundle(
            directory,
            token_cache_size=config.token_cache_size,
            max_token_bytes=config.max_token_bytes,
            key_provider=keys,
        )
        keys.wait_ready(issuer.remote for issuer in snapshot.issuers if issuer.remote)
        return snapshot

    watch = DirectoryWatch(config.policies) if config.watch and config.policies.is_dir() else None
    if watch is not None:
        await watch.start()
    debounce = config.reload_debounce_seconds
    try:
        store = SnapshotStore(
            await asyncio.to_thread(load, config.policies),
            state_dir=config.state_dir,
            bundle_dir=config.policies,
            loader=load,
            events=events,
        )
        shadowing = None
        if config.shadow_policies is not None:
            shadowing = await open_shadow(
                config.shadow_policies, store, loader=load, watch=config.watch, debounce=debounce
            )
    except BaseException:
        if watch is not None:
            await watch.close()
        await keys.close()
        raise
    exempt_from_gc()
    reloader = Reloader(store, config.policies, loader=load, debounce=debounce, watch=watch)
    if shadowing is None:
        return Runtime(0, store, reloader, keys)
    return Runtime(0, store, reloader, keys, *shadowing)


async def _start_grpc(
    service: AuthorizationService,
    listen: str,
    credentials: grpc.ServerCredentials | None,
    *,
    reuse_port: bool = False,
) -> tuple[grpc.aio.Server, health_aio.HealthServicer, int]:
    """Check and grpc.health.v1 on ``listen`` (over TLS with ``credentials``), started and
    SERVING; the bound port. Only with ``reuse_port`` may other processes listen on it too
    (the workers of `authz serve --workers`): otherwise a port in use is an error."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ]
    )
    server.add_generic_rpc_handlers((service.handler(),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if credentials is None:
        port = server.add_insecure_port(listen)
    else:
        port = server.add_secure_port(listen, credentials)
    await server.start()
    # SERVING from here on, across reloads: a failed reload keeps the last good bundle.
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health, port


def _bound(listen: str, port: int) -> str:
    host = listen.rpartition(":")[0]
    return f"{host}:{port}"
