"""The `authz admin` command: the admin API from a shell, for one server or a whole fleet.

One server is named by ``--url``; a fleet by ``--fleet``, either a DNS name whose
A/AAAA records are the replicas or a comma-separated list of ``host:port``. The
command goes to every replica at once and each one's answer and active version
is reported, so version skew shows at a glance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "Call",
    "Replica",
    "Result",
    "add_admin_parser",
    "call_all",
    "fleet_replicas",
    "fleet_report",
    "main",
    "run",
]

# authz.admin.DEFAULT_ADMIN_LISTEN, not imported: `authz --help` need not load aiohttp.
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9192"
_DEFAULT_PORT = int(DEFAULT_ADMIN_LISTEN.rpartition(":")[2])
_EXIT_OK, _EXIT_FAILED = 0, 1

_DESCRIPTION = """\
Steer running authz servers through their admin API (authz serve --admin-listen).

  authz admin status                                   versions, pin, lockdowns, issuers
  authz admin reload                                   read the bundle directory now
  authz admin rollback sha256:…                        serve an earlier version, pinned
  authz admin unpin                                    follow the bundle directory again
  authz admin lockdown --name inc-1 --reason "…" [--tenant acme] [--exempt-path /healthz]
  authz admin release inc-1                            switch a run-time lockdown off
  authz admin --fleet authz-admin.shop.svc status      every replica, and version skew

Prints the JSON answer; exit 0 when every server said yes, 1 otherwise.
"""


@dataclass(frozen=True, slots=True)
class Call:
    """One admin API call: method, path and JSON body."""

    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Replica:
    """One server to call: its base URL, a label, and the name its certificate carries."""

    url: str
    label: str
    server_hostname: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """A replica's answer: HTTP status (None when unreachable) and JSON body."""

    replica: str
    status: int | None
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.status is not None and 200 <= self.status < 300


def add_admin_parser(commands: Any) -> None:
    """Register `authz admin`."""
    admin = commands.add_parser(
        "admin",
        help="steer running servers through the admin API",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(admin)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m authz.admin_cli …`: the same as `authz admin …`."""
    parser = argparse.ArgumentParser(
        prog="authz admin",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _configure(parser)
    return run(parser.parse_args(argv))


def _configure(parser: argparse.ArgumentParser) -> None:
    default_url = os.environ.get("AUTHZ_ADMIN_URL", f"http://{DEFAULT_ADMIN_LISTEN}")
    token_file = os.environ.get("AUTHZ_ADMIN_TOKEN_FILE")
    parser.add_argument(
        "--url", default=default_url, help=f"admin API (env AUTHZ_ADMIN_URL; default {default_url})"
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=Path(token_file) if token_file else None,
        help="file holding the bearer token (env AUTHZ_ADMIN_TOKEN_FILE)",
    )
    parser.add_argument("--cacert", type=Path, help="CA that signed the server's certificate")
    parser.add_argument("--cert", type=Path, help="client certificate (PEM), for mTLS")
    parser.add_argument("--key", type=Path, help="client certificate's private key (PEM)")
    parser.add_argument(
        "--fleet",
        metavar="TARGET",
        help="every replica: a DNS name (each A/AAAA record, port from --url) "
        "or host:port,host:port,…",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call (10)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("status", help="versions, pin, lockdowns, issuers, reload counters")
    actions.add_parser("reload", help="read the bundle directory now")
    rollback = actions.add_parser("rollback", help="serve an earlier version and pin it")
    rollback.add_argument("version", help="a version from `status` history, e.g. sha256:…")
    actions.add_parser("unpin", help="follow the bundle directory again")
    lockdown = actions.add_parser("lockdown", help="switch an emergency lockdown on")
    lockdown.add_argument("--name", required=True, help="lockdown name, e.g. inc-4711")
    lockdown.add_argument("--reason", required=True, help="why, e.g. the incident; shown by status")
    lockdown.add_argument("--tenant", help="only this tenant (default: every request)")
    lockdown.add_argument("--exempt-path", action="append", default=[], metavar="PATTERN")
    lockdown.add_argument("--exempt-principal", action="append", default=[], metavar="PATTERN")
    lockdown.add_argument("--expires", help="RFC 3339 with a zone, e.g. 2026-11-28T00:00:00Z")
    release = actions.add_parser("release", help="switch a run-time lockdown off")
    release.add_argument("name", help="the lockdown's name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed `authz admin` command; print the JSON result; the exit status."""
    try:
        token = _read_token(args.token_file) if args.token_file else None
        context = _ssl_context(args.cacert, args.cert, args.key)
        base = args.url.rstrip("/")
        replicas = fleet_replicas(args.fleet, base) if args.fleet else [Replica(base, base)]
    except (OSError, ValueError, ssl.SSLError) as exc:
        print(f"authz admin: {exc}", file=sys.stderr)
        return _EXIT_FAILED
    results = asyncio.run(call_all(replicas, _call(args), token, context, args.timeout))
    if args.fleet:
        print(json.dumps(fleet_report(results), indent=2))
    else:
        print(json.dumps(results[0].body, indent=2))
    return _EXIT_OK if all(result.ok for result in results) else _EXIT_FAILED


def _call(args: argparse.Namespace) -> Call:
    action: str = args.action
    if action == "status":
        return Call("GET", "/v1/status")
    if action == "rollback":
        return Call("POST", "/v1/rollback", {"version": args.version})
    if action == "lockdown":
        body: dict[str, Any] = {"name": args.name, "reason": args.reason}
        # `--tenant ""` is sent, and refused: an empty variable must not widen the
        # lockdown to every tenant.
        optional = {"tenant": args.tenant, "expires": args.expires}
        body.update({field: value for field, value in optional.items() if value is not None})
        lists = {"exemptPaths": args.exempt_path, "exemptPrincipals": args.exempt_principal}
        body.update({field: value for field, value in lists.items() if value})
        return Call("POST", "/v1/lockdown", body)
    if action == "release":
        return Call("DELETE", f"/v1/lockdown/{quote(args.name, safe='')}")
    return Call("POST", f"/v1/{action}", {})  # reload, unpin


def fleet_replicas(target: str, base_url: str) -> list[Replica]:
    """The replicas named by ``--fleet``: scheme and default port come from ``base_url``.

    ``a:9192,b:9192`` (or one ``host:port``) is a list; a bare DNS name stands for
    every address it resolves to, and TLS then checks that name, not the address.
    """
    parts = urlsplit(base_url)
    scheme, port = parts.scheme or "http", parts.port or _DEFAULT_PORT
    entries = [entry.strip() for entry in target.split(",") if entry.strip()]
    if not entries:
        raise ValueError("--fleet: no replica named")
    if len(entries) == 1 and not _has_port(entries[0]):
        name = entries[0].strip("[]")
        found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        return [_replica(scheme, address, port, name) for address in addresses]
    replicas = []
    for entry in entries:
        host, _, number = entry.rpartition(":") if _has_port(entry) else (entry, "", str(port))
        if not number.isdigit():
            raise ValueError(f"--fleet: {entry!r} is not HOST:PORT")
        replicas.append(_replica(scheme, host.strip("[]"), int(number), None))
    return replicas


def _has_port(entry: str) -> bool:
    if entry.startswith("["):
        return "]:" in entry
    return entry.count(":") == 1


def _replica(scheme: str, host: str, port: int, name: str | None) -> Replica:
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Replica(f"{scheme}://{netloc}", netloc, name)


def fleet_report(results: Sequence[Result]) -> dict[str, Any]:
    """Each replica's answer and active version; the distinct versions (skew when > 1)."""
    replicas = [
        {
            "replica": result.replica,
            "ok": result.ok,
            "status": result.status,
            "active_version": result.body.get("active_version"),
            "result": result.body,
        }
        for result in results
    ]
    versions = sorted({str(r["active_version"]) for r in replicas if r["active_version"]})
    return {
        "ok": all(result.ok for result in results),
        "versions": versions,
        "skew": len(versions) > 1,
        "replicas": replicas,
    }


async def call_all(
    replicas: Sequence[Replica],
    call: Call,
    token: str | None,
    context: ssl.SSLContext | None,
    timeout: float,
) -> list[Result]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limit = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(headers=headers, timeout=limit) as session:
        calls = (_send(session, replica, call, context) for replica in replicas)
        return list(await asyncio.gather(*calls))


async def _send(
    session: aiohttp.ClientSession, replica: Replica, call: Call, context: ssl.SSLContext | None
) -> Result:
    from aiohttp import ClientError

    try:
        async with session.request(
            call.method,
            replica.url + call.path,
            json=call.body,
            ssl=context if context is not None else True,
            server_hostname=replica.server_hostname,
        ) as response:
            text = await response.text()
            status = response.status
    except (ClientError, TimeoutError, OSError) as exc:
        message = str(exc) or type(exc).__name__
        return Result(replica.label, None, {"error": "unreachable", "message": message})
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"error": "not_json", "message": text[:500]}
    return Result(replica.label, status, body)


def _read_token(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"--token-file: {path} is empty")
    return token


def _ssl_context(cacert: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cacert is None and cert is None:
        return None
    if (cert is None) != (key is None):
        raise ValueError("--cert and --key: give both or neither")
    context = ssl.create_default_context(cafile=str(cacert) if cacert else None)
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


if __name__ == "__main__":
    sys.exit(main())
