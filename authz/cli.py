"""The `authz` command line: serve, check, validate, token, keygen.

Configuration is read here and only here (flags, then ``AUTHZ_*`` environment
variables), into frozen dataclasses the rest of the service receives.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import json_format

from authz import __version__, loops
from authz._proto.envoy.service.auth.v3 import external_auth_pb2
from authz.admin_cli import DEFAULT_ADMIN_LISTEN, add_admin_parser
from authz.audit import AuditConfig
from authz.audit_cli import add_audit_arguments, add_report_parser, audit_config
from authz.authoring_cli import (
    add_diff_parser,
    add_explain_argument,
    add_test_parser,
    explain_check,
)
from authz.config import (
    DEFAULT_LISTEN,
    ConfigError,
    FetchSettings,
    ServerConfig,
    TelemetrySettings,
)
from authz.cpus import usable_cpus
from authz.decision import new_decision_id
from authz.engine import decide
from authz.errors import BundleError
from authz.loops import DEFAULT_LOOP, LOOPS
from authz.policy.bundle import load_bundle
from authz.request import from_check_request
from authz.tokens_cli import add_keygen_parser, add_token_parser
from authz.workers import WorkerSpec, parse_worker

if TYPE_CHECKING:
    from authz.admin import AdminConfig

__all__ = ["main"]

_DESCRIPTION = """\
authz: the external authorization service behind Envoy (ext_authz v3, gRPC).

It answers Envoy's Check calls from a policy bundle: RBAC over mTLS workload
identities and JWT roles, ABAC as CEL conditions, tenants kept apart.

  authz serve    --policies policies/              serve Check and grpc.health.v1,
                                                   reloading the bundle when it changes
  authz validate policies/                         every bundle error, exit 1 if any
  authz check    --policies policies/ req.json     decide one CheckRequest offline
                                                   (--explain: why, rule by rule)
  authz test     policies/                         run the bundle's PolicyTests, rule coverage
  authz diff     old/ new/                         rule changes; flags those that widen access
  authz admin    status|reload|rollback|lockdown…  the running server's admin API
  authz keygen   --key k.pem --jwks jwks.json      a local signing key for trying it out
  authz token    --key k.pem --issuer … --subject …   mint a token with that key
  authz report   decisions.log… --out DIR          compliance report from decision logs
"""

_EXIT_ALLOWED, _EXIT_DENIED, _EXIT_BAD_INPUT = 0, 1, 2
AUTO = "auto"  # --workers auto: one per usable CPU


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `authz` and `python -m authz`; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `--workers` passes on
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    status: int = args.run(args)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authz", description=_DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"authz {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("AUTHZ_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity on stderr (env AUTHZ_LOG_LEVEL; default info)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve Envoy's Authorization/Check and grpc.health.v1",
        description="Load the bundle, then serve Check until SIGTERM/SIGINT. An invalid bundle "
        "is printed and the command exits 2 without serving. Health is SERVING once the "
        "bundle is loaded. The bundle is reloaded when its directory changes and on SIGHUP; "
        "an invalid reload is logged and the last good version keeps serving.",
    )
    serve.add_argument(
        "--policies",
        default=os.environ.get("AUTHZ_POLICIES"),
        required="AUTHZ_POLICIES" not in os.environ,
        type=Path,
        help="bundle directory (env AUTHZ_POLICIES)",
    )
    serve.add_argument(
        "--listen",
        default=os.environ.get("AUTHZ_LISTEN", DEFAULT_LISTEN),
        help=f"HOST:PORT to listen on, loopback unless told otherwise "
        f"(env AUTHZ_LISTEN; default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=5.0,
        help="seconds to finish in-flight calls on shutdown (default 5)",
    )
    serve.add_argument(
        "--loop",
        choices=LOOPS,
        default=os.environ.get("AUTHZ_LOOP", DEFAULT_LOOP),
        help=f"event loop (env AUTHZ_LOOP; default {DEFAULT_LOOP}: uvloop when installed, "
        "cheaper per call than asyncio's own)",
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=os.environ.get("AUTHZ_WORKERS", AUTO),
        metavar="N|auto",
        help="serve Check from N processes sharing the port (SO_REUSEPORT), each with its own "
        "bundle, watcher and keys; a worker that dies is restarted; the admin API and "
        '--metrics-listen reach every worker (samples labelled worker="K"); with '
        "--state-dir, worker K keeps STATE_DIR/worker-K. auto: one per CPU this process may "
        "use, its CPU affinity capped by its cgroup's CPU quota (a Kubernetes CPU limit of 1 "
        "gives 1, 1.5 gives 2); 1 serves from this process alone, with no supervisor "
        "(env AUTHZ_WORKERS; default auto)",
    )
    serve.add_argument(
        "--worker",
        type=parse_worker,
        metavar="K:ADMIN_PORT:TOKEN_FILE",
        help="set by --workers on the processes it starts: serve as worker K, its admin API "
        "on 127.0.0.1:ADMIN_PORT behind the token in TOKEN_FILE",
    )
    serve.add_argument(
        "--state-dir",
        default=os.environ.get("AUTHZ_STATE_DIR"),
        type=Path,
        help="directory that keeps the version history, a rollback pin and runtime lockdowns "
        "across restarts (env AUTHZ_STATE_DIR; default: not kept)",
    )
    serve.add_argument(
        "--no-watch",
        dest="watch",
        action="store_false",
        help="do not reload when the bundle directory changes (SIGHUP still reloads)",
    )
    serve.add_argument(
        "--reload-debounce",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="reload once changes have stopped for this long (default 0.2)",
    )
    _add_token_arguments(serve)
    serve.add_argument(
        "--shadow-policies",
        default=os.environ.get("AUTHZ_SHADOW_POLICIES") or None,
        type=Path,
        metavar="DIR",
        help="a candidate bundle decided next to --policies on every request and never "
        "enforced: each difference is logged (logger authz.shadow, one JSON line) and counted. "
        "Reloaded like --policies. An invalid shadow bundle at start is logged and the server "
        "runs without shadow: it never stops the server (env AUTHZ_SHADOW_POLICIES)",
    )
    serve.add_argument(
        "--decision-cache",
        type=int,
        default=os.environ.get("AUTHZ_DECISION_CACHE", "0"),
        metavar="N",
        help="keep up to N recent decisions and answer a repeated request from them, never "
        "under another policy version, past its token's expiry or the end of a lockdown; "
        "bundles whose conditions read the clock, request.id or the whole header map are not "
        "cached (logged). See docs/decision-cache.md (env AUTHZ_DECISION_CACHE; default 0: off)",
    )
    serve.add_argument(
        "--decision-cache-ttl",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how long a cached decision may be served, at most (default 1; at most 60)",
    )
    _add_tls_arguments(serve)
    add_audit_arguments(serve)
    serve.add_argument(
        "--admin-listen",
        default=os.environ.get("AUTHZ_ADMIN_LISTEN"),
        metavar="HOST:PORT",
        help=f"where the admin API listens (env AUTHZ_ADMIN_LISTEN; default {DEFAULT_ADMIN_LISTEN} "
        "when a token file or client CA is given, else no admin API; 'off' turns it off)",
    )
    serve.add_argument(
        "--admin-token-file",
        type=Path,
        default=os.environ.get("AUTHZ_ADMIN_TOKEN_FILE"),
        help="admin callers must send this file's content as a bearer token "
        "(env AUTHZ_ADMIN_TOKEN_FILE; mode 600, at least 16 characters)",
    )
    serve.add_argument("--admin-tls-cert", type=Path, help="admin API over HTTPS: certificate")
    serve.add_argument("--admin-tls-key", type=Path, help="admin API over HTTPS: private key")
    serve.add_argument(
        "--admin-client-ca", type=Path, help="admin API mTLS: CA of the callers' certificates"
    )
    _add_telemetry_arguments(serve)
    serve.set_defaults(run=_serve)

    validate = commands.add_parser(
        "validate",
        help="check a bundle and print every error",
        description="Load and compile a bundle; print every error as file:line:column: "
        "YAML path: message. Exit 0 if valid, 1 if not.",
    )
    validate.add_argument("policies", type=Path, help="bundle directory")
    validate.set_defaults(run=_validate)

    check = commands.add_parser(
        "check",
        help="decide one CheckRequest (proto3 JSON) offline",
        description="Decide one CheckRequest, given in proto3 JSON as Envoy sends it, and print "
        "the decision as JSON. Exit 0 allowed, 1 denied, 2 bad input or bundle errors.",
    )
    check.add_argument("--policies", required=True, type=Path, help="bundle directory")
    check.add_argument("--now", help="evaluation time, RFC 3339 (default: the current time)")
    check.add_argument("request", type=Path, help="CheckRequest JSON file ('-' for stdin)")
    add_explain_argument(check)
    check.set_defaults(run=_check)

    add_test_parser(commands)
    add_diff_parser(commands)
    add_admin_parser(commands)
    add_token_parser(commands)
    add_keygen_parser(commands)
    add_report_parser(commands)
    return parser


def _add_tls_arguments(serve: argparse.ArgumentParser) -> None:
    """The gRPC port's mTLS: the server's certificate, the client CA, the allow-list."""
    serve.add_argument(
        "--tls-cert",
        type=Path,
        default=os.environ.get("AUTHZ_TLS_CERT"),
        metavar="PATH",
        help="serve gRPC over TLS with this certificate (PEM, chain allowed); needs --tls-key "
        "and --client-ca. The three files are re-read when they change on disk (cert-manager, "
        "SPIRE, a Kubernetes secret volume): new connections get the new ones, open ones stay "
        "(env AUTHZ_TLS_CERT)",
    )
    serve.add_argument(
        "--tls-key",
        type=Path,
        default=os.environ.get("AUTHZ_TLS_KEY"),
        metavar="PATH",
        help="the private key of --tls-cert (PEM, unencrypted); a replacement pair that does "
        "not load or does not match is refused and logged, and the old pair keeps serving "
        "(env AUTHZ_TLS_KEY)",
    )
    serve.add_argument(
        "--client-ca",
        type=Path,
        default=os.environ.get("AUTHZ_CLIENT_CA"),
        metavar="PATH",
        help="CA certificate(s) (PEM) that client certificates must chain to: a client "
        "without such a certificate fails the TLS handshake (mTLS) (env AUTHZ_CLIENT_CA)",
    )
    serve.add_argument(
        "--allow-client",
        action="append",
        default=None,
        metavar="ID",
        help="only this client may call Check: the SPIFFE ID in its certificate's URI SAN, "
        "exactly, or a prefix ending in /* (spiffe://cluster.local/ns/istio-system/*); "
        "repeatable. Others get PERMISSION_DENIED, which Envoy turns into a 403. Health "
        "checks are not restricted. Needs mTLS; default: any certificate from --client-ca "
        "(env AUTHZ_ALLOW_CLIENTS, IDs separated by commas or spaces, used when no "
        "--allow-client is given)",
    )


def _serve(args: argparse.Namespace) -> int:
    # grpc.aio and the file watcher are only needed by this command
    from authz.reload import WatchError
    from authz.server import run_server
    from authz.statedir import StateError

    try:
        config = ServerConfig(
            policies=args.policies,
            listen=args.listen,
            grace_seconds=args.grace,
            state_dir=args.state_dir,
            watch=args.watch,
            reload_debounce_seconds=args.reload_debounce,
            shadow_policies=args.shadow_policies,
            max_token_bytes=args.max_token_bytes,
            keys=FetchSettings(
                timeout_seconds=args.jwks_timeout,
                max_bytes=args.jwks_max_bytes,
                refresh_seconds=args.jwks_refresh,
                min_refresh_seconds=args.jwks_min_refresh,
                max_refresh_seconds=args.jwks_max_refresh,
                cooldown_seconds=args.jwks_cooldown,
                kid_wait_seconds=args.jwks_kid_wait,
            ),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            client_ca=args.client_ca,
            allow_clients=_allow_clients(args.allow_client),
            telemetry=_telemetry_settings(args),
            decision_cache=args.decision_cache,
            decision_cache_ttl_seconds=args.decision_cache_ttl,
        )
        admin = _admin_config(args)
        audit = audit_config(args)
        loops.factory(args.loop)  # AUTHZ_LOOP is not checked by argparse
    except ConfigError as exc:
        print(f"authz serve: {exc}", file=sys.stderr)
        return _EXIT_BAD_INPUT
    workers = 1
    if args.worker is not None:
        config, admin = _as_worker(config, args.worker)
        audit = _worker_audit(audit, args.worker.index)
    else:
        workers = _resolve_workers(args.workers)
    logging.getLogger("authz.server").info("event loop: %s", args.loop)
    try:
        if workers > 1:
            from authz.workers import supervise

            serving = supervise(
                args.argv,
                workers,
                config.listen,
                admin,
                config.grace_seconds,
                config.telemetry.metrics_listen,
            )
            loops.run(serving, args.loop)
        else:
            loops.run(run_server(config, admin=admin, audit=audit), args.loop)
    except BundleError as exc:
        _print_errors(exc)
        return _EXIT_BAD_INPUT
    except (StateError, WatchError, ConfigError) as exc:  # ConfigError: e.g. a bad token file
        print(f"authz serve: {exc}", file=sys.stderr)
        return _EXIT_BAD_INPUT
    return 0


def _allow_clients(given: list[str] | None) -> tuple[str, ...]:
    """``--allow-client`` as given, or else AUTHZ_ALLOW_CLIENTS (commas or spaces between)."""
    if given is not None:
        return tuple(given)
    return tuple(os.environ.get("AUTHZ_ALLOW_CLIENTS", "").replace(",", " ").split())


def _worker_count(text: str) -> int | str:
    """``--workers``: a positive number, or ``auto``."""
    if text == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or {AUTO}, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _resolve_workers(asked: int | str) -> int:
    """How many processes serve: ``asked``, or for ``auto`` one per usable CPU; logged."""
    log = logging.getLogger("authz.workers")
    if isinstance(asked, int):
        log.info("workers: %d (set by --workers or AUTHZ_WORKERS)", asked)
        return asked
    usable = usable_cpus()
    log.info("workers: %d (auto: %s)", usable.count, usable)
    return usable.count


def _as_worker(config: ServerConfig, worker: WorkerSpec) -> tuple[ServerConfig, AdminConfig]:
    """Worker ``K`` of `--workers`: the shared port, its own state, the private admin API.

    ``--metrics-listen`` is the parent's, which merges the workers' metrics: a worker
    serves its own only on its private admin API.
    """
    from authz.admin import AdminConfig

    state_dir = config.state_dir / f"worker-{worker.index}" if config.state_dir else None
    private = AdminConfig(listen=f"127.0.0.1:{worker.admin_port}", token_file=worker.token_file)
    telemetry = dataclasses.replace(config.telemetry, metrics_listen=None)
    own = dataclasses.replace(config, reuse_port=True, state_dir=state_dir, telemetry=telemetry)
    return own, private


def _worker_audit(audit: AuditConfig, index: int) -> AuditConfig:
    """Worker ``K`` writes its own files (``PATH.worker-K``): one writer per file."""

    def own(path: str | None) -> str | None:
        return path if path is None or path == "-" else f"{path}.worker-{index}"

    return dataclasses.replace(
        audit,
        decision_log=own(audit.decision_log),
        security_events=own(audit.security_events),
    )


def _add_token_arguments(serve: argparse.ArgumentParser) -> None:
    defaults = FetchSettings()
    group = serve.add_argument_group(
        "tokens and remote keys",
        "Issuers with jwksUri or discovery: true have their keys fetched over HTTPS in the "
        "background, at start and then as the response's Cache-Control max-age says (clamped "
        "to the bounds below). A token with an unknown kid triggers one refresh per cool-down; "
        "requests meeting it wait for it at most --jwks-kid-wait. If the identity provider is "
        "down, the last good keys keep serving; an issuer whose keys were never fetched gets "
        "401 invalid_token for its tokens.",
    )
    group.add_argument(
        "--max-token-bytes",
        type=int,
        default=16_384,
        metavar="N",
        help="a longer token is refused (401) before any parsing or crypto (default 16384)",
    )

    def seconds(flag: str, default: float, text: str) -> None:
        dest = flag.removeprefix("--").replace("-", "_")
        group.add_argument(
            flag,
            dest=dest,
            type=float,
            default=default,
            metavar="S",
            help=f"{text} (default {default:g})",
        )

    seconds("--jwks-timeout", defaults.timeout_seconds, "whole-exchange timeout of a key fetch")
    group.add_argument(
        "--jwks-max-bytes",
        type=int,
        default=defaults.max_bytes,
        metavar="N",
        help=f"largest JWKS or discovery response accepted (default {defaults.max_bytes})",
    )
    seconds("--jwks-refresh", defaults.refresh_seconds, "refresh interval without max-age")
    seconds("--jwks-min-refresh", defaults.min_refresh_seconds, "lower bound on max-age")
    seconds("--jwks-max-refresh", defaults.max_refresh_seconds, "upper bound on max-age")
    seconds("--jwks-cooldown", defaults.cooldown_seconds, "between unknown-kid refreshes")
    seconds("--jwks-kid-wait", defaults.kid_wait_seconds, "how long a request waits for one")


def _add_telemetry_arguments(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group(
        "metrics and traces",
        "Prometheus metrics are served at GET /metrics on the admin API (with its "
        "authentication) and, with --metrics-listen, on a port of their own. A span per Check "
        "is sent over OTLP with --otlp-endpoint. See docs/observability.md.",
    )
    group.add_argument(
        "--metrics-listen",
        default=os.environ.get("AUTHZ_METRICS_LISTEN") or None,
        metavar="HOST:PORT",
        help="also serve GET /metrics (nothing else) here, without authentication, for a "
        "scraper that should not hold the admin token; e.g. 127.0.0.1:9193, or 0.0.0.0:9193 "
        "behind a NetworkPolicy (env AUTHZ_METRICS_LISTEN; default: off)",
    )
    group.add_argument(
        "--metrics-tenant-label",
        type=int,
        default=int(os.environ.get("AUTHZ_METRICS_TENANT_LABEL", "0")),
        metavar="N",
        help="label authz_checks_total with the tenant, for the first N tenants seen; later "
        'ones are counted as tenant="other" (env AUTHZ_METRICS_TENANT_LABEL; default 0: no '
        "tenant label)",
    )
    group.add_argument(
        "--otlp-endpoint",
        default=os.environ.get("AUTHZ_OTLP_ENDPOINT") or None,
        metavar="URL",
        help="send a span per Check to this OTLP/gRPC collector, http://HOST:PORT (plaintext) "
        "or https://HOST:PORT (env AUTHZ_OTLP_ENDPOINT; default: no tracing, no cost)",
    )
    group.add_argument(
        "--trace-sample-ratio",
        type=float,
        default=float(os.environ.get("AUTHZ_TRACE_SAMPLE_RATIO", "1")),
        metavar="R",
        help="share of Checks traced when the caller sent no sampling decision (traceparent "
        "or B3); a caller's decision is always followed (env AUTHZ_TRACE_SAMPLE_RATIO; "
        "default 1)",
    )


def _telemetry_settings(args: argparse.Namespace) -> TelemetrySettings:
    return TelemetrySettings(
        metrics_listen=args.metrics_listen,
        metrics_tenant_label=args.metrics_tenant_label,
        otlp_endpoint=args.otlp_endpoint,
        trace_sample_ratio=args.trace_sample_ratio,
    )


def _admin_config(args: argparse.Namespace) -> AdminConfig | None:
    """The admin API's settings, or None when it is off.

    Admin calls always need credentials: without a token file or client CA the
    API is not started, unless an address was asked for, which is then refused.
    """
    credentials = args.admin_token_file is not None or args.admin_client_ca is not None
    if args.admin_listen == "off" or (args.admin_listen is None and not credentials):
        if args.admin_listen is None and args.worker is None:  # a worker's is private
            logging.getLogger("authz.admin").info(
                "admin API off: give --admin-token-file or --admin-client-ca to turn it on"
            )
        return None
    from authz.admin import AdminConfig  # aiohttp is only needed with an admin API

    return AdminConfig(
        listen=args.admin_listen or DEFAULT_ADMIN_LISTEN,
        token_file=args.admin_token_file,
        tls_cert=args.admin_tls_cert,
        tls_key=args.admin_tls_key,
        client_ca=args.admin_client_ca,
    )


def _validate(args: argparse.Namespace) -> int:
    try:
        snapshot = load_bundle(args.policies)
    except BundleError as exc:
        _print_errors(exc)
        return 1
    print(
        f"{args.policies}: valid, {len(snapshot.files)} file(s), "
        f"{len(snapshot.rules.rules)} rule(s), version {snapshot.version}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        now = _parse_time(args.now) if args.now else datetime.now(UTC)
        text = sys.stdin.read() if str(args.request) == "-" else args.request.read_text()
        if not isinstance(json.loads(text), dict):
            raise ValueError(f"{args.request}: a CheckRequest must be a JSON object")
        message = json_format.Parse(text, external_auth_pb2.CheckRequest())
    except (OSError, ValueError, json_format.ParseError) as exc:
        print(f"authz check: {exc}", file=sys.stderr)
        return _EXIT_BAD_INPUT
    try:
        snapshot = load_bundle(args.policies)
    except BundleError as exc:
        _print_errors(exc)
        return _EXIT_BAD_INPUT
    attributes = from_check_request(message)
    decision = decide(snapshot, attributes, now)
    output = decision.as_json(new_decision_id(), snapshot.version)
    if args.explain:
        output = explain_check(args.explain, snapshot, attributes, now, output)
    print(json.dumps(output, indent=2))
    if decision.detail:
        print(f"detail: {decision.detail}", file=sys.stderr)
    return _EXIT_ALLOWED if decision.allowed else _EXIT_DENIED


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"--now {text!r}: needs a time zone, e.g. 2026-06-01T12:00:00Z")
    return value


def _print_errors(exc: BundleError) -> None:
    for error in exc.errors:
        print(error, file=sys.stderr)
    print(f"{len(exc.errors)} error(s)", file=sys.stderr)
