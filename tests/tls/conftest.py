"""Fixtures of the mTLS tests: the shop bundle and a mesh CA with its certificates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.shop import install_shop
from tests.pki import CertificateAuthority, Issued
from tests.policy.bundles import SigningKey
from tests.tls.files import SERVER_IPS

GATEWAY = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = SigningKey.generate(tmp_path_factory.mktemp("key"))
    return install_shop(tmp_path_factory.mktemp("shop") / "bundle", key)


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    """The mesh CA: it signs the server's certificate and the clients'."""
    return CertificateAuthority("mesh-ca")


@pytest.fixture(scope="session")
def server_cert(ca: CertificateAuthority) -> Issued:
    return ca.issue("authz", uris=["spiffe://cluster.local/ns/authz/sa/authz"], ips=SERVER_IPS)


@pytest.fixture(scope="session")
def gateway(ca: CertificateAuthority) -> Issued:
    """The client certificate of the ingress gateway's Envoy."""
    return ca.issue("istio-ingressgateway", uris=[GATEWAY])
