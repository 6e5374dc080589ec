"""The admin API: an HTTP/JSON port, apart from Check, to steer a running server.

It shows what is being served (versions, lockdowns, issuers), reloads the bundle,
pins an earlier version (rollback) and switches emergency lockdowns on and off
at run time. Everything it changes goes through the snapshot store; it decides
nothing itself. Callers prove who they are with a bearer token or a client
certificate; every call is logged with the caller and the outcome.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import ssl
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from authz.config import ConfigError
from authz.errors import PolicyError
from authz.policy.lockdown import Lockdown, compile_lockdown
from authz.policy.matchers import StringMatcher
from authz.policy.rules import NAME, NAME_RULE
from authz.policy.source import Document
from authz.reload import Reloader
from authz.store import RuntimeLockdown, SnapshotStore, Version

__all__ = [
    "DEFAULT_ADMIN_LISTEN",
    "MAX_BODY_BYTES",
    "AdminConfig",
    "AdminServer",
    "start_admin",
]

DEFAULT_ADMIN_LISTEN = "127.0.0.1:9192"
MAX_BODY_BYTES = 64 * 1024
_MIN_TOKEN_LENGTH = 16
_REALM = 'Bearer realm="authz-admin"'
_CHALLENGE = {"WWW-Authenticate": _REALM}
_CALLER = web.RequestKey("caller", str)  # who is calling, once authenticated
_OUTCOME = web.RequestKey("outcome", str)  # what the call did, for the log line
_log = logging.getLogger("authz.admin")


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Where the admin API listens and how callers authenticate."""

    listen: str = DEFAULT_ADMIN_LISTEN
    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None  # set: every caller needs a certificate signed by it (mTLS)

    def __post_init__(self) -> None:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"admin-listen: expected HOST:PORT, got {self.listen!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("admin-tls-cert, admin-tls-key: give both or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise ConfigError("admin-client-ca: mTLS needs admin-tls-cert and admin-tls-key too")
        if self.token_file is None and self.client_ca is None:
            # Anyone who can reach the port could unpin policy or lift a lockdown, and
            # loopback is no boundary: in a Kubernetes pod every container shares it.
            raise ConfigError(
                "admin-token-file, admin-client-ca: admin callers must authenticate; give a "
                "bearer token file or a CA for client certificates (mTLS)"
            )

    @property
    def host(self) -> str:
        """The host to bind, without IPv6 brackets."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The port to bind (0 picks a free one)."""
        return int(self.listen.rpartition(":")[2])


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


async def start_admin(store: SnapshotStore, reloader: Reloader, config: AdminConfig) -> AdminServer:
    """Serve the admin API; ConfigError when the token or TLS files or the address are unusable."""
    token = _read_token(config.token_file) if config.token_file is not None else None
    context = _ssl_context(config) if config.tls_cert is not None else None
    api = _Api(store, reloader, token, mtls=config.client_ca is not None)
    app = web.Application(middlewares=[api.middleware], client_max_size=MAX_BODY_BYTES)
    app.add_routes(
        [
            web.get("/v1/status", api.status, allow_head=False),
            web.post("/v1/reload", api.reload),
            web.post("/v1/rollback", api.rollback),
            web.post("/v1/unpin", api.unpin),
            web.post("/v1/lockdown", api.lock),
            web.delete("/v1/lockdown/{name}", api.release),
        ]
    )
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
    auth = " and ".join(name for name, on in (("bearer token", token), ("mTLS", api.mtls)) if on)
    _log.info(
        "admin API on %s:%d (%s, %s)", config.host, port, "https" if context else "http", auth
    )
    if token is not None and context is None and not _is_loopback(config.host):
        _log.warning("admin API: the bearer token crosses the network in clear; set TLS")
    return AdminServer(runner, port)


def _read_token(path: Path) -> bytes:
    """The token in ``path``; the file must not be readable or writable by others."""
    try:
        with path.open("rb") as file:  # fstat the file that is read: no check-then-open race
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IROTH | stat.S_IWOTH):
                raise ConfigError(
                    f"admin-token-file: {path} is accessible by others (mode "
                    f"{stat.S_IMODE(mode):04o}); chmod 600 it (0400/0440 for a mounted Secret)"
                )
            token = file.read(4096).strip()
    except OSError as exc:
        raise ConfigError(f"admin-token-file: cannot read {path}: {exc.strerror}") from None
    if len(token) < _MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"admin-token-file: {path} must hold a token of at least {_MIN_TOKEN_LENGTH} "
            "characters, e.g. from `openssl rand -hex 32`"
        )
    return token


def _ssl_context(config: AdminConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
        if config.client_ca is not None:
            context.load_verify_locations(cafile=str(config.client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"admin-tls: cannot load the certificate files: {exc}") from None
    return context


class _Problem(Exception):
    """An answer other than success: HTTP status, a stable error word, a message."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra
        self.headers = headers or {}


class _Api:
    """The handlers, and the middleware that authenticates and logs every call."""

    def __init__(
        self, store: SnapshotStore, reloader: Reloader, token: bytes | None, mtls: bool
    ) -> None:
        self.store, self.reloader, self.token, self.mtls = store, reloader, token, mtls

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            request[_CALLER] = self._caller(request)
            response = await self._handle(request, handler)
        except _Problem as problem:
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
        except _Problem:
            raise
        except web.HTTPException as exc:  # the router's 404/405, the body limit's 413
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            raise _Problem(exc.status, _word(exc.reason), exc.reason, allow) from None
        except Exception as exc:
            _log.exception("admin %s %s: internal error", request.method, _printable(request.path))
            message = f"internal error ({type(exc).__name__})"
            raise _Problem(500, "internal_error", message) from None

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
                raise _Problem(401, "unauthorized", "a bearer token is required", _CHALLENGE)
            # Constant time: a timing difference would reveal the token byte by byte.
            if not hmac.compare_digest(presented.strip().encode("utf-8", "replace"), self.token):
                challenge = {"WWW-Authenticate": f'{_REALM}, error="invalid_token"'}
                raise _Problem(401, "unauthorized", "the bearer token is not valid", challenge)
            return identity if self.mtls else "token"
        return identity  # mTLS alone: the TLS layer already refused uncertified callers

    def _problem(self, request: web.Request, problem: _Problem) -> web.Response:
        request[_OUTCOME] = problem.error
        body: dict[str, Any] = {"error": problem.error, "message": problem.message}
        body.update(problem.extra)
        if _CALLER in request:  # only an authenticated caller learns the served version
            body.update(self._state())
        return web.json_response(body, status=problem.status, headers=problem.headers)

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
            history=[_version_json(version) for version in store.history],
            lockdowns={
                "bundle": [_lockdown_json(x) for x in snapshot.lockdowns if id(x) not in merged],
                "runtime": [_runtime_json(entry) for entry in runtime],
            },
            issuers=[
                {"name": issuer.name, "issuer": issuer.issuer, "keys": len(issuer.keys.keys)}
                for issuer in snapshot.issuers
            ],
            reloads={"successes": self.reloader.successes, "failures": self.reloader.failures},
        )

    async def reload(self, request: web.Request) -> web.Response:
        """POST /v1/reload: read the bundle directory now."""
        _fields(await _json_body(request), ())
        if not await self.reloader.reload_now():
            errors = [str(error) for error in self.reloader.last_errors]
            message = "the bundle on disk is invalid; nothing changed"
            raise _Problem(422, "bundle_invalid", message, problems=errors)
        newest = self.store.history[0].version  # pinned: loaded, recorded, not applied
        outcome = f"reloaded {newest}, serving {self.store.active_version}"
        return self._reply(request, outcome, reloaded=True, loaded_version=newest)

    async def rollback(self, request: web.Request) -> web.Response:
        """POST /v1/rollback {"version"}: serve an earlier version and pin it."""
        body = _fields(await _json_body(request), ("version",), required=("version",))
        version = body["version"]
        if not isinstance(version, str) or not version:
            raise _Problem(400, "bad_request", "version: must be a non-empty string")
        try:
            # A version no longer in memory is rebuilt from disk: off the event loop.
            await asyncio.to_thread(self.store.rollback, version)
        except KeyError as exc:
            message = str(exc.args[0]) if exc.args else "version: not in this server's history"
            raise _Problem(404, "unknown_version", message) from None
        return self._reply(request, f"rolled back to {version}, pinned", rolled_back=version)

    async def unpin(self, request: web.Request) -> web.Response:
        """POST /v1/unpin: follow the bundle directory again."""
        _fields(await _json_body(request), ())
        await asyncio.to_thread(self.store.unpin)
        return self._reply(request, f"unpinned, serving {self.store.active_version}", unpinned=True)

    async def lock(self, request: web.Request) -> web.Response:
        """POST /v1/lockdown: switch a lockdown on (the bundle's Lockdown spec, plus a name)."""
        lockdown = _lockdown_from(await _json_body(request), datetime.now(UTC))
        await asyncio.to_thread(self.store.lock, lockdown, request[_CALLER])
        scope = f"tenant {lockdown.tenant}" if lockdown.tenant else "every tenant"
        outcome = f"lockdown {lockdown.name} on ({scope}): {lockdown.reason}"
        return self._reply(request, outcome, lockdown=_lockdown_json(lockdown))

    async def release(self, request: web.Request) -> web.Response:
        """DELETE /v1/lockdown/{name}: switch a run-time lockdown off."""
        name = request.match_info["name"]
        if not await asyncio.to_thread(self.store.release, name, request[_CALLER]):
            declared = any(x.name == name for x in self.store.current.lockdowns)
            hint = "; it is declared in the bundle: remove it there" if declared else ""
            raise _Problem(404, "unknown_lockdown", f"no run-time lockdown by that name{hint}")
        return self._reply(request, f"lockdown {name} released", released=name)


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} when empty); 415 unless sent as JSON.

    Insisting on application/json keeps browsers out: a cross-site form cannot
    send it without a CORS preflight, which this API never answers.
    """
    if request.content_type != "application/json":
        raise _Problem(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()  # at most MAX_BODY_BYTES, else 413
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise _Problem(400, "bad_json", f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _Problem(400, "bad_json", "the body must be a JSON object")
    return value


def _fields(
    body: dict[str, Any], allowed: Sequence[str], required: Sequence[str] = ()
) -> dict[str, Any]:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise _Problem(400, "bad_request", f"unknown field(s): {', '.join(unknown)}")
    missing = [name for name in required if name not in body]
    if missing:
        raise _Problem(400, "bad_request", f"missing required field(s): {', '.join(missing)}")
    return body


def _lockdown_from(body: dict[str, Any], now: datetime) -> Lockdown:
    """A Lockdown from the request, validated exactly as the bundle's ``kind: Lockdown``."""
    spec = dict(body)
    name = spec.pop("name", None)
    problems = [] if isinstance(name, str) and NAME.match(name) else [f"name: {NAME_RULE}"]
    errors: list[PolicyError] = []
    lockdown = compile_lockdown(Document("request", {"spec": spec}), errors, str(name))
    for error in errors:
        where = error.path.removeprefix("spec").lstrip(".")
        problems.append(f"{where}: {error.message}" if where else error.message)
    if lockdown is not None and lockdown.expires is not None and lockdown.expires <= now:
        problems.append("expires: is in the past")
    if problems or lockdown is None:
        raise _Problem(400, "invalid_lockdown", "; ".join(problems), problems=problems)
    return lockdown


def _version_json(version: Version) -> dict[str, Any]:
    return {
        "version": version.version,
        "loaded_at": _time(version.loaded_at),
        "files": list(version.files),
        "applied": version.applied,
    }


def _lockdown_json(lockdown: Lockdown) -> dict[str, Any]:
    """A lockdown in the bundle's spelling, so it can be pasted into a Lockdown document."""
    return {
        "name": lockdown.name,
        "tenant": lockdown.tenant or None,
        "reason": lockdown.reason,
        "exemptPaths": _patterns(lockdown.exempt_paths),
        "exemptPrincipals": _patterns(lockdown.exempt_principals),
        "expires": _time(lockdown.expires) if lockdown.expires is not None else None,
    }


def _runtime_json(entry: RuntimeLockdown) -> dict[str, Any]:
    return {**_lockdown_json(entry.lockdown), "actor": entry.actor, "since": _time(entry.since)}


_ONE_SEGMENT, _REST = "/[^/]+", "(?:/.*)?"  # what compile_path_template makes of {*}, {**}


def _patterns(matcher: StringMatcher | None) -> list[str]:
    """The patterns ``matcher`` was built from (principals in Istio form)."""
    if matcher is None:
        return []
    found = sorted(matcher.exact)
    found += [prefix + "*" for prefix in matcher.prefixes]
    found += ["*" + suffix for suffix in matcher.suffixes]
    found += ["*"] if matcher.present else []
    return found + [_template(compiled.pattern) for compiled in matcher.templates]


def _template(regex: str) -> str:
    """The path template a ``compile_path_template`` regex came from."""
    out: list[str] = []
    body, index = regex.removesuffix(r"\Z"), 0
    while index < len(body):
        if body.startswith(_REST, index):
            out.append("/{**}")
            index += len(_REST)
        elif body.startswith(_ONE_SEGMENT, index):
            out.append("/{*}")
            index += len(_ONE_SEGMENT)
        else:  # a literal, escaped by re.escape when special
            step = 2 if body[index] == "\\" else 1
            out.append(body[index + step - 1])
            index += step
    return "".join(out)


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


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
