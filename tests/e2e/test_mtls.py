"""Workload identity end to end: mTLS callers → Envoy → (mTLS) → authz → the upstream.

The example bundle's payment rules (``policies/platform/payments.yaml``): only the
order service (``cluster.local/ns/order/sa/order-service``) may charge, with an
idempotency key and an amount of at most 5000. A scratch copy of the bundle adds a
Revocations document naming the serial of one stolen order-service certificate.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest

from dev import upstream
from dev.bundle import ScratchBundle, prepare
from tests.e2e.mesh import SIDECAR_ID, Mesh, mesh_stack, spiffe_id
from tests.e2e.stack import Reply, Stack
from tests.pki import Issued

ROOT = Path(__file__).resolve().parents[2]
PAYMENTS = "/api/v1/payments"
PAYMENT_HOST = "payment.payment.svc.cluster.local:8080"
CHARGE = [("x-idempotency-key", "ord-77"), ("x-amount", "120")]
ORDER_ID = spiffe_id("order", "order-service")
SIDECARS = "spiffe://cluster.local/ns/payment/*"
GATEWAY_ID = spiffe_id("istio-system", "istio-ingressgateway")


@pytest.fixture(scope="module")
def mesh(workdir: Path) -> Mesh:
    return Mesh.create(workdir / "mesh")


@pytest.fixture(scope="module")
def stolen(mesh: Mesh) -> Issued:
    """An order-service certificate whose serial the bundle revokes."""
    return mesh.workload("order", "order-service")


@pytest.fixture(scope="module")
def mesh_bundle(workdir: Path, stolen: Issued) -> ScratchBundle:
    bundle = prepare(ROOT / "policies", workdir / "mesh-bundle", workdir / "mesh-key.pem")
    serial = stolen.serial.to_bytes((stolen.serial.bit_length() + 7) // 8).hex(":")
    (bundle.path / "revocations.yaml").write_text(
        "apiVersion: authz/v1\nkind: Revocations\nmetadata: {name: stolen-order-certificate}\n"
        f'spec:\n  certificateSerials: ["{serial}"]\n'
    )
    return bundle


@pytest.fixture(scope="module")
def sidecar(
    mesh: Mesh, mesh_bundle: ScratchBundle, echo: upstream.EchoServer, workdir: Path
) -> Iterator[Stack]:
    """Envoy as the payment sidecar; the authz server lets the payment sidecars ask."""
    with mesh_stack(mesh, mesh_bundle, echo.port, workdir / "sidecar", (SIDECARS,)) as stack:
        yield stack


def charge(stack: Stack, client: ssl.SSLContext) -> Reply:
    """A charge of 120 with an idempotency key, as the client's workload."""
    return stack.request(PAYMENTS, method="POST", host=PAYMENT_HOST, headers=CHARGE, tls=client)


def test_the_order_service_charges_and_the_upstream_sees_it(sidecar: Stack, mesh: Mesh) -> None:
    reply = charge(sidecar, mesh.client(mesh.workload("order", "order-service")))

    assert reply.status == HTTPStatus.OK, reply.body
    assert (reply.json()["method"], reply.json()["path"]) == ("POST", PAYMENTS)
    [forwarded] = reply.upstream_headers("x-forwarded-client-cert")
    assert f"URI={ORDER_ID}" in forwarded.split(";")
    [decision_id] = reply.upstream_headers("x-authz-decision-id")
    line = sidecar.access_log_line(decision_id)
    assert "reason=allowed rule=payments/order-service-charges" in line


def test_another_service_account_is_403(sidecar: Stack, mesh: Mesh) -> None:
    reply = charge(sidecar, mesh.client(mesh.workload("shipping", "shipping")))

    assert reply.status == HTTPStatus.FORBIDDEN, reply.body
    assert reply.json()["reason"] == "no_match"


def test_a_revoked_certificate_is_403_revoked(sidecar: Stack, mesh: Mesh, stolen: Issued) -> None:
    reply = charge(sidecar, mesh.client(stolen))

    assert reply.status == HTTPStatus.FORBIDDEN, reply.body
    assert reply.json()["reason"] == "revoked"


def test_no_client_certificate_fails_the_handshake(sidecar: Stack, mesh: Mesh) -> None:
    before = sidecar.listener_tls_stats().get("fail_verify_no_cert", 0)

    with pytest.raises((ssl.SSLError, ConnectionError)):
        charge(sidecar, mesh.client(None))

    deadline = time.monotonic() + 10
    while sidecar.listener_tls_stats().get("fail_verify_no_cert", 0) == before:
        assert time.monotonic() < deadline, sidecar.listener_tls_stats()
        time.sleep(0.1)


def test_authz_refuses_a_sidecar_not_on_its_allow_list(
    mesh: Mesh, mesh_bundle: ScratchBundle, echo: upstream.EchoServer, workdir: Path
) -> None:
    directory = workdir / "gateway-only"
    with mesh_stack(mesh, mesh_bundle, echo.port, directory, (GATEWAY_ID,)) as stack:
        reply = charge(stack, mesh.client(mesh.workload("order", "order-service")))
        errors = stack.ext_authz_stats()["error"]

    assert reply.status == HTTPStatus.FORBIDDEN
    assert errors == 1  # Envoy got PERMISSION_DENIED, not a decision
    authz_log = (directory / "authz.log").read_text()
    assert f"refused Check from {SIDECAR_ID}: not on --allow-client" in authz_log
