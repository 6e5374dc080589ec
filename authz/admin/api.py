"""Admin API edge: the aiohttp app, its handlers, and the middleware that authenticates and logs.

Handlers translate HTTP into snapshot-store calls and back; they decide nothing.
Every call is one line on the ``authz.admin`` logger, with the caller and the outcome.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from authz.admin.config import AdminConfig, read_token, ssl_context
from authz.admin.forms import MAX_BODY_BYTES, fields, json_body, lockdown_from
from authz.admin.problem import Problem
from authz.admin.render import (
    cache_json,
    issuer_json,
    lockdown_json,
    runtime_json,
    version_json,
)
from authz.config import ConfigError
from authz.decision_cache import DecisionCache
from authz.identity.remote import KeyFetcher, SourceStatus
from authz.identity.tokens import Issuer
from authz.policy.bundle import Snapshot
from authz.reload import Reloader
from authz.store import SnapshotStore
from authz.telemetry.endpoint import metrics_response
from authz.telemetry.metrics import Metrics

__all__ = ["AdminGate", "AdminServer", "listen", "start_admin"]

_REALM = 'Bearer realm="authz-admin"'
_CHALLENGE = {"WWW-Authenticate": _REALM}
_CALLER = web.RequestKey("caller", str)  # who is calling, once authenticated
_OUTCOME = web.RequestKey("outcome", str)  # what the call did, for the log line
_log = logging.getLogger("authz.admin")


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP literal, brackets allowed) only reaches this machine."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminServer:
    """A running admin API: its bound port and how to stop it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def stop(self) -> None:
        """Close the listener and finish open connections."""
        await self._runner.cleanup()


async def start_admin(
    store: SnapshotStore,
    reloader: Reloader,
    config: AdminConfig,
    keys: KeyFetcher | None = None,
    metrics: Metrics | None = None,
    decision_cache: DecisionCache | None = None,
) -> AdminServer:
    """Serve the admin API; ConfigError when the token or TLS files or the address are unusable.

    With ``keys``, the status shows how each remote issuer's keys are being fetched;
    with ``metrics``, ``GET /metrics`` serves them (authenticated like every call);
    with ``decision_cache``, the status shows it.
    """
    token = read_token(config.token_file) if config.token_file is not None else None
    mtls = config.client_ca is not None
    api = _Api(store, reloader, token, mtls=mtls, keys=keys, decision_cache=decision_cache)
    routes = _routes(api)
    if metrics is not None:
        routes.append(web.get("/metrics", api.metrics(metrics), allow_head=False))
    return await listen(api, config, routes)


def _routes(api: _Api) -> list[web.AbstractRouteDef]:
    return [
        web.get("/v1/status", api.status, allow_head=False),
        web.post("/v1/reload", api.reload),
        web.post("/v1/rollback", api.rollback),
        web.post("/v1/unpin", api.unpin),
        web.post("/v1/lockdown", api.lock),
        web.delete("/v1/lockdown/{name}", api.release),
    ]


async def listen(
    gate: AdminGate, config: AdminConfig, routes: Sequence[web.AbstractRouteDef]
) -> AdminServer:
    """Serve ``routes`` behind ``gate`` where ``config`` says; ConfigError if it cannot."""
    context = ssl_context(config) if config.tls_cert is not None else None
    app = web.Application(middlewares=[gate.middleware], client_max_size=MAX_BODY_BYTES)
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port, ssl_context=context).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"admin-listen: cannot listen on {config.listen}: {exc.strerror}"
        ) from None
    port = int(runner.addresses[0][1])
    token = gate.token
    auth = " and ".join(name for name, on in (("bearer token", token), ("mTLS", gate.mtls)) if on)
    _log.info(
        "admin API on %s:%d (%s, %s)", config.host, port, "https" if context else "http", auth
    )
    if token is not None and context is None and not _is_loopback(config.host):
        _log.warning("admin API: the bearer token crosses the network in clear; set TLS")
    return AdminServer(runner, port)


class AdminGate:
    """The middleware that authenticates and logs every admin call, and answers problems.

    With ``token``, callers must present it as a bearer token; with ``mtls``, the TLS
    layer has verified their certificate. Subclasses add the handlers.
    """

    def __init__(self, token: bytes | None, mtls: bool) -> None:
        self.token, self.mtls = token, mtls

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            request[_CALLER] = self._caller(request)
            response = await self._handle(request, handler)
        except Problem as problem:
            response = self._problem(request, problem)
        _log.log(
            logging.INFO if response.status < 400 else logging.WARNING,
            "admin %s %s by %s: %d %s",
            request.method,
            _printable(request.path),
            request.get(_CALLER, "-"),
            response.status,
            _printable(request.get(_OUTCOME, "ok")),
        )
        return response

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The handler's answer; anything else it raises becomes a problem."""
        try:
            return await handler(request)
        except Problem:
            raise
        except web.HTTPException as exc:  # the router's 404/405, the body limit's 413
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            raise Problem(exc.status, _word(exc.reason), exc.reason, allow) from None
        except Exception as exc:
            _log.exception("admin %s %s: internal error", request.method, _printable(request.path))
            message = f"internal error ({type(exc).__name__})"
            raise Problem(500, "internal_error", message) from None

    def _caller(self, request: web.Request) -> str:
        """Who is calling; raises a 401/403 problem when that cannot be established."""
        identity = "-"
        if self.mtls:
            transport = request.transport
            peer = transport.get_extra_info("peercert") if transport is not None else None
            identity = _certificate_identity(peer)
        if self.token is not None:
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not presented.strip():
                raise Problem(401, "unauthorized", "a bearer token is required", _CHALLENGE)
            # Constant time: a timing difference would reveal the token byte by byte.
            if not hmac.compare_digest(presented.strip().encode("utf-8", "replace"), self.token):
                challenge = {"WWW-Authenticate": f'{_REALM}, error="invalid_token"'}
                raise Problem(401, "unauthorized", "the bearer token is not valid", challenge)
            return identity if self.mtls else "token"
        return identity  # mTLS alone: the TLS layer already refused uncertified callers

    def _problem(self, request: web.Request, problem: Problem) -> web.Response:
        request[_OUTCOME] = problem.error
        body: dict[str, Any] = {"error": problem.error, "message": problem.message}
        body.update(problem.extra)
        if _CALLER in request:  # only an authenticated caller learns the served version
            body.update(self._state())
        return web.json_response(body, status=problem.status, headers=problem.headers)

    def _state(self) -> dict[str, Any]:
        """What an authenticated caller learns with every answer, problems included."""
        return {}


class _Api(AdminGate):
    """The handlers of one server's admin API."""

    def __init__(
        self,
        store: SnapshotStore,
        reloader: Reloader,
        token: bytes | None,
        mtls: bool,
        keys: KeyFetcher | None,
        decision_cache: DecisionCache | None = None,
    ) -> None:
        super().__init__(token, mtls)
        self.store, self.reloader, self.keys = store, reloader, keys
        self.decision_cache = decision_cache

    def _state(self) -> dict[str, Any]:
        return {"active_version": self.store.active_version, "pinned": self.store.pinned}

    def _reply(self, request: web.Request, outcome: str, **body: Any) -> web.Response:
        request[_OUTCOME] = outcome
        return web.json_response({**self._state(), **body})

    async def status(self, request: web.Request) -> web.Response:
        """GET /v1/status."""
        store, snapshot = self.store, self.store.current
        runtime = store.lockdowns
        merged = {id(entry.lockdown) for entry in runtime}  # the snapshot holds both kinds
        return self._reply(
            request,
            "status",
            bundle_version=snapshot.version,
            history=[version_json(version) for version in store.history],
            lockdowns={
                "bundle": [lockdown_json(x) for x in snapshot.lockdowns if id(x) not in merged],
                "runtime": [runtime_json(entry) for entry in runtime],
            },
            issuers=[issuer_json(issuer, self._fetched(issuer)) for issuer in snapshot.issuers],
            reloads={"successes": self.reloader.successes, "failures": self.reloader.failures},
            **self._cache(snapshot),
        )

    def _cache(self, snapshot: Snapshot) -> dict[str, Any]:
        """The decision cache's part of the status; nothing when it is off."""
        if self.decision_cache is None:
            return {}
        return {"decision_cache": cache_json(self.decision_cache, snapshot)}

    def _fetched(self, issuer: Issuer) -> SourceStatus | None:
        if issuer.remote is None or self.keys is None:
            return None
        return self.keys.source(issuer.remote).status()

    def metrics(self, metrics: Metrics) -> Handler:
        """GET /metrics: the Prometheus exposition."""

        async def handle(request: web.Request) -> web.StreamResponse:
            request[_OUTCOME] = "metrics"
            return metrics_response(metrics)

        return handle

    async def reload(self, request: web.Request) -> web.Response:
        """POST /v1/reload: read the bundle directory now."""
        fields(await json_body(request), ())
        if not await self.reloader.reload_now():
            errors = [str(error) for error in self.reloader.last_errors]
            message = "the bundle on disk is invalid; nothing changed"
            raise Problem(422, "bundle_invalid", message, problems=errors)
        newest = self.store.history[0].version  # pinned: loaded, recorded, not applied
        outcome = f"reloaded {newest}, serving {self.store.active_version}"
        return self._reply(request, outcome, reloaded=True, loaded_version=newest)

    async def rollback(self, request: web.Request) -> web.Response:
        """POST /v1/rollback {"version"}: serve an earlier version and pin it."""
        body = fields(await json_body(request), ("version",), required=("version",))
        version = body["version"]
        if not isinstance(version, str) or not version:
            raise Problem(400, "bad_request", "version: must be a non-empty string")
        try:
            # A version no longer in memory is rebuilt from disk: off the event loop.
            await asyncio.to_thread(self.store.rollback, version)
        except KeyError as exc:
            message = str(exc.args[0]) if exc.args else "version: not in this server's history"
            raise Problem(404, "unknown_version", message) from None
        return self._reply(request, f"rolled back to {version}, pinned", rolled_back=version)

    async def unpin(self, request: web.Request) -> web.Response:
        """POST /v1/unpin: follow the bundle directory again."""
        fields(await json_body(request), ())
        await asyncio.to_thread(self.store.unpin)
        return self._reply(request, f"unpinned, serving {self.store.active_version}", unpinned=True)

    async def lock(self, request: web.Request) -> web.Response:
        """POST /v1/lockdown: switch a lockdown on (the bundle's Lockdown spec, plus a name)."""
        lockdown = lockdown_from(await json_body(request), datetime.now(UTC))
        await asyncio.to_thread(self.store.lock, lockdown, request[_CALLER])
        scope = f"tenant {lockdown.tenant}" if lockdown.tenant else "every tenant"
        outcome = f"lockdown {lockdown.name} on ({scope}): {lockdown.reason}"
        return self._reply(request, outcome, lockdown=lockdown_json(lockdown))

    async def release(self, request: web.Request) -> web.Response:
        """DELETE /v1/lockdown/{name}: switch a run-time lockdown off."""
        name = request.match_info["name"]
        if not await asyncio.to_thread(self.store.release, name, request[_CALLER]):
            declared = any(x.name == name for x in self.store.current.lockdowns)
            hint = "; it is declared in the bundle: remove it there" if declared else ""
            raise Problem(404, "unknown_lockdown", f"no run-time lockdown by that name{hint}")
        return self._reply(request, f"lockdown {name} released", released=name)


def _certificate_identity(peer: Any) -> str:
    """``CN=…,O=… (URI:spiffe://…)`` from a verified client certificate."""
    if not isinstance(peer, dict):
        return "mtls:unknown"
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
    subject = ",".join(
        f"{short.get(key, key)}={value}" for rdn in peer.get("subject", ()) for key, value in rdn
    )
    names = ", ".join(f"{kind}:{value}" for kind, value in peer.get("subjectAltName", ()))
    return _printable(f"{subject} ({names})" if names else subject or "mtls:anonymous")


def _word(reason: str) -> str:
    return reason.lower().replace(" ", "_")


def _printable(text: str, limit: int = 200) -> str:
    """``text`` safe for one log line: no control characters, bounded length."""
    cleaned = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:limit])
    return cleaned + "…" if len(text) > limit else cleaned
