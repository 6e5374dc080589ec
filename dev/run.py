"""``make run``: the whole demo stack on this machine, with curl commands to try.

Starts the authz server (127.0.0.1:9191) on a scratch copy of ``policies/`` that trusts
a local demo key, the echo upstream (127.0.0.1:18080) and Envoy (127.0.0.1:10000, admin
127.0.0.1:9901), then prints requests that show an allow, a 401 and a cross-tenant 403.
Everything lives in ``.run/`` (gitignored); the demo key is kept across runs. Tokens
go to files under ``.run/tokens/`` (mode 0600) and the commands read them from there,
so no token is ever printed. Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from dev import envoy, upstream
from dev.authz_server import AuthzServer, AuthzServerError
from dev.bundle import BundleError, ScratchBundle, prepare
from dev.ports import LOOPBACK, port_in_use

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
HOST = "api.shop.example.com"
AUTHZ_PORT, UPSTREAM_PORT, ENVOY_PORT, ADMIN_PORT = 9191, 18080, 10000, 9901


@dataclass(frozen=True, slots=True)
class DemoToken:
    """A token the demo mints: written to ``.run/tokens/<name>.jwt``."""

    name: str
    subject: str
    roles: tuple[str, ...]
    tenant: str


@dataclass(frozen=True, slots=True)
class DemoRequest:
    """One ready-to-paste request and what it shows."""

    expect: str
    why: str
    path: str
    token: str | None  # DemoToken.name


TOKENS = (DemoToken("acme-staff", "alice", ("vendor:staff",), "acme"),)

REQUESTS = (
    DemoRequest(
        "200",
        "acme vendor staff reads acme's orders; the echo shows the x-authz-* headers",
        "/api/v1/vendors/acme/orders",
        "acme-staff",
    ),
    DemoRequest(
        "401 missing_token",
        "no token on a protected path; see www-authenticate",
        "/api/v1/vendors/acme/orders",
        None,
    ),
    DemoRequest(
        "403 cross_tenant",
        "an acme token asking for globex's orders: the tenant isolation guard",
        "/api/v1/vendors/globex/orders",
        "acme-staff",
    ),
)


class _Stop(Exception):
    """Raised from the SIGTERM handler to unwind like Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _busy_ports() -> list[str]:
    wanted = {
        "authz server": AUTHZ_PORT,
        "upstream": UPSTREAM_PORT,
        "envoy": ENVOY_PORT,
        "envoy admin": ADMIN_PORT,
    }
    return [f"{LOOPBACK}:{port} ({what})" for what, port in wanted.items() if port_in_use(port)]


def _write_tokens(bundle: ScratchBundle, directory: Path) -> dict[str, Path]:
    directory.mkdir(mode=0o700, exist_ok=True)
    files = {}
    for token in TOKENS:
        path = directory / f"{token.name}.jwt"
        value = bundle.token(token.subject, roles=token.roles, tenant=token.tenant)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        files[token.name] = path
    return files


def _curl(request: DemoRequest, token_files: dict[str, Path]) -> str:
    parts = ["curl -i", f"-H 'host: {HOST}'"]
    if request.token is not None:
        shown = os.path.relpath(token_files[request.token])
        parts.append(f'-H "authorization: Bearer $(cat {shown})"')
    parts.append(f"http://{LOOPBACK}:{ENVOY_PORT}{request.path}")
    return " ".join(parts)


def _banner(token_files: dict[str, Path]) -> str:
    lines = [
        "",
        f"authz demo is up: envoy http://{LOOPBACK}:{ENVOY_PORT}  "
        f"(admin :{ADMIN_PORT}, authz :{AUTHZ_PORT}, upstream :{UPSTREAM_PORT})",
        "",
    ]
    for number, request in enumerate(REQUESTS, start=1):
        lines.append(f"# {number}. expect {request.expect}: {request.why}")
        lines.append(_curl(request, token_files))
        lines.append("")
    lines.append("Envoy's access log (with decision_id/reason/tenant) follows. Ctrl-C stops.")
    return "\n".join(lines)


def _serve(bundle: ScratchBundle, stack: contextlib.ExitStack) -> int:
    server = AuthzServer(bundle.path, AUTHZ_PORT)
    server.start()
    stack.callback(server.stop)
    echo = upstream.start(UPSTREAM_PORT)
    stack.callback(echo.stop)
    cfg = envoy.EnvoyConfig(ENVOY_PORT, ADMIN_PORT, AUTHZ_PORT, UPSTREAM_PORT)
    proxy = envoy.start(cfg)
    stack.callback(proxy.stop)
    try:
        server.wait_serving()
        proxy.wait_ready()
        print(_banner(_write_tokens(bundle, RUN_DIR / "tokens")), flush=True)
        while server.running and proxy.process.poll() is None:
            time.sleep(0.5)
    finally:
        # A second Ctrl-C must not interrupt the orderly stop of the children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    died = "authz server" if not server.running else "envoy"
    print(f"run: {died} exited unexpectedly; stopping", file=sys.stderr)
    return 1


def main() -> int:
    """Start the stack, print the demo requests, run until interrupted."""
    busy = _busy_ports()
    if busy:
        print(f"run: port(s) already in use: {', '.join(busy)}", file=sys.stderr)
        return 1
    RUN_DIR.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        bundle = prepare(ROOT / "policies", RUN_DIR / "bundle", RUN_DIR / "demo-key.pem")
        with contextlib.ExitStack() as stack:
            return _serve(bundle, stack)
    except (KeyboardInterrupt, _Stop):
        print("\nrun: stopped", file=sys.stderr)
        return 0
    except (BundleError, AuthzServerError, envoy.EnvoyError, OSError) as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
