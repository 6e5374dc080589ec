"""A small mesh for the mTLS end-to-end tests: one CA, workloads with SPIFFE IDs, and a
stack whose Envoy plays the payment service's sidecar.

That Envoy terminates mTLS from the calling workloads, so its CheckRequest carries the
caller's SPIFFE ID as ``source.principal`` (and the certificate), and asks the authz
server over mTLS as the sidecar's own identity, checking the server's.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dev import envoy
from dev.authz_server import AuthzServer, AuthzServerError
from dev.bundle import ScratchBundle
from dev.mtls import Mtls
from dev.ports import free_port
from tests.e2e.stack import Stack, log_tail
from tests.pki import CertificateAuthority, Issued

TRUST_DOMAIN = "spiffe://cluster.local"


def spiffe_id(namespace: str, service_account: str) -> str:
    """The SPIFFE ID Istio gives a service account."""
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


AUTHZ_ID = spiffe_id("authz-system", "authz")
SIDECAR_ID = spiffe_id("payment", "payment")


@dataclass(frozen=True)
class Mesh:
    """The mesh CA and the certificate files of the authz server and the sidecar."""

    ca: CertificateAuthority
    directory: Path

    @classmethod
    def create(cls, directory: Path) -> Mesh:
        directory.mkdir(parents=True)
        mesh = cls(CertificateAuthority("mesh-ca"), directory)
        mesh.ca.write(mesh.ca_file)
        # 127.0.0.1 too: the health probe checks the server's address like any gRPC client.
        authz = mesh.ca.issue("authz", uris=[AUTHZ_ID], ips=["127.0.0.1"])
        authz.write(directory / "authz.pem", directory / "authz.key")
        sidecar = mesh.ca.issue("payment", uris=[SIDECAR_ID], ips=["127.0.0.1"])
        sidecar.write(directory / "sidecar.pem", directory / "sidecar.key")
        return mesh

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def authz(self) -> Mtls:
        """The authz server's side: any client certificate from the mesh CA."""
        return Mtls(self.directory / "authz.pem", self.directory / "authz.key", self.ca_file)

    def sidecar(self, peer_id: str | None = None) -> Mtls:
        """The sidecar's side, towards callers (any) or towards the authz server."""
        cert, key = self.directory / "sidecar.pem", self.directory / "sidecar.key"
        return Mtls(cert, key, self.ca_file, peer_id)

    def workload(self, namespace: str, service_account: str) -> Issued:
        """A new certificate for a service account (a new serial each time)."""
        return self.ca.issue(service_account, uris=[spiffe_id(namespace, service_account)])

    def client(self, certificate: Issued | None) -> ssl.SSLContext:
        """A client trusting the mesh CA, presenting ``certificate`` if given."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if certificate is not None:
            serial = f"{certificate.serial:x}"
            files = self.directory / f"{serial}.pem", self.directory / f"{serial}.key"
            context.load_cert_chain(*certificate.write(*files))
        return context


@contextlib.contextmanager
def mesh_stack(
    mesh: Mesh,
    bundle: ScratchBundle,
    upstream_port: int,
    directory: Path,
    allow_clients: tuple[str, ...],
) -> Iterator[Stack]:
    """The authz server over mTLS (``--allow-client`` each of ``allow_clients``) behind
    the sidecar's Envoy; logs go to ``directory``."""
    directory.mkdir(parents=True)
    authz_log, envoy_log = directory / "authz.log", directory / "envoy.log"
    access_log = directory / "envoy-access.log"
    with authz_log.open("ab") as log:
        server = AuthzServer(
            bundle.path, free_port(), stderr=log, tls=mesh.authz, allow_clients=allow_clients
        )
        server.start()
        try:
            try:
                server.wait_serving()
            except AuthzServerError as exc:
                pytest.fail(f"{exc}\n--- authz log ---\n{log_tail(authz_log)}")
            with access_log.open("ab") as out, envoy_log.open("ab") as err:
                cfg = envoy.EnvoyConfig(
                    free_port(),
                    free_port(),
                    server.port,
                    upstream_port,
                    listener_tls=mesh.sidecar(),
                    authz_tls=mesh.sidecar(peer_id=AUTHZ_ID),
                )
                proxy = envoy.start(cfg, stdout=out, stderr=err)
                try:
                    try:
                        proxy.wait_ready()
                    except envoy.EnvoyError as exc:
                        pytest.fail(f"{exc}\n--- envoy log ---\n{log_tail(envoy_log)}")
                    yield Stack(bundle, server, proxy, access_log)
                finally:
                    proxy.stop()
        finally:
            server.stop()
