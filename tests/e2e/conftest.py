"""Session fixtures: the real authz server, the echo upstream and the real Envoy.

Everything runs on ephemeral 127.0.0.1 ports, on a scratch copy of ``policies/`` that
trusts a key generated for this session. Envoy starts once per session; the fail-closed
test stops the authz server and starts it again on the same port.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dev import envoy, upstream
from dev.authz_server import AuthzServer, AuthzServerError
from dev.bundle import ScratchBundle, keygen, prepare
from dev.ports import free_port
from tests.e2e.stack import Stack, log_tail

ROOT = Path(__file__).resolve().parents[2]

STAFF = ("vendor:staff",)


def _tokens(bundle: ScratchBundle, workdir: Path) -> dict[str, str]:
    """Valid tokens for each vendor, and invalid ones that only a check can tell apart."""
    rogue_key = workdir / "rogue-key.pem"  # same kid, key the bundle does not trust
    keygen(rogue_key, workdir / "rogue-jwks.json")
    return {
        "acme-staff": bundle.token("alice", roles=STAFF, tenant="acme"),
        "globex-staff": bundle.token("gina", roles=STAFF, tenant="globex"),
        "no-tenant-staff": bundle.token("nora", roles=STAFF),
        "expired": bundle.token("alice", roles=STAFF, tenant="acme", ttl_s=-300),
        "wrong-audience": bundle.token("alice", roles=STAFF, tenant="acme", audience="other-api"),
        "rogue-key": replace(bundle, key=rogue_key).token("alice", roles=STAFF, tenant="acme"),
    }


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def bundle(workdir: Path) -> ScratchBundle:
    return prepare(ROOT / "policies", workdir / "bundle", workdir / "test-key.pem")


@pytest.fixture(scope="session")
def authz(bundle: ScratchBundle, workdir: Path) -> Iterator[AuthzServer]:
    log_path = workdir / "authz.log"
    with log_path.open("ab") as log:
        server = AuthzServer(bundle.path, free_port(), stderr=log)
        server.start()
        try:
            try:
                server.wait_serving()
            except AuthzServerError as exc:
                pytest.fail(f"{exc}\n--- authz log ---\n{log_tail(log_path)}")
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def echo() -> Iterator[upstream.EchoServer]:
    server = upstream.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(
    bundle: ScratchBundle, authz: AuthzServer, echo: upstream.EchoServer, workdir: Path
) -> Iterator[Stack]:
    access_log = workdir / "envoy-access.log"
    cfg = envoy.EnvoyConfig(free_port(), free_port(), authz.port, echo.port)
    with access_log.open("ab") as out, (workdir / "envoy.log").open("ab") as err:
        proxy = envoy.start(cfg, stdout=out, stderr=err)
        try:
            try:
                proxy.wait_ready()
            except envoy.EnvoyError as exc:
                pytest.fail(f"{exc}\n--- envoy log ---\n{log_tail(workdir / 'envoy.log')}")
            yield Stack(bundle, authz, proxy, access_log, _tokens(bundle, workdir))
        finally:
            proxy.stop()
