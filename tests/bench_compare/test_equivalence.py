"""The alternatives decide like authz: Envoy's RBAC rule and Cerbos's policy are equivalent.

Every case is a request for acme's orders (the one rule the alternatives express). The
RBAC Envoy and the Envoy + ext_authz stack must answer each with the same status; Cerbos
must allow exactly the cases authz allows that it can express (a GET, with a token).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from bench.compare import cerbos
from bench.compare.setups import HOST, SETUPS, Workload

STAFF, MANAGER, CUSTOMER = ("vendor:staff",), ("vendor:manager",), ("customer",)


@dataclass(frozen=True, slots=True)
class Case:
    """One request: whose token (roles, tenant) asks for which vendor's orders, and how."""

    roles: tuple[str, ...] | None  # None: no token at all
    tenant: str | None
    vendor: str = "acme"
    method: str = "GET"
    host: str = HOST
    suffix: str = ""
    status: int = 200

    @property
    def path(self) -> str:
        return f"/api/v1/vendors/{self.vendor}/orders{self.suffix}"


CASES = {
    "staff-reads-orders": Case(STAFF, "acme"),
    "staff-reads-one-order": Case(STAFF, "acme", suffix="/42"),
    "manager-reads-orders": Case(MANAGER, "acme"),
    "other-vendor-staff": Case(STAFF, "globex", status=403),
    "staff-reads-another-vendor": Case(STAFF, "acme", vendor="globex", status=403),
    "customer": Case(CUSTOMER, None, status=403),
    "staff-without-tenant": Case(STAFF, None, status=403),
    "post": Case(STAFF, "acme", method="POST", status=403),
    "other-host": Case(STAFF, "acme", host="media.shop.example.com", status=403),
    "no-token": Case(None, None, status=401),
}


def _token(load: Workload, case: Case) -> str | None:
    if case.roles is None:
        return None
    return load.bundle.token("bench", roles=case.roles, tenant=case.tenant)


def _status(base: str, case: Case, token: str | None) -> int:
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    headers = {"host": case.host}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    try:
        connection.request(case.method, case.path, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def envoys(load: Workload) -> Iterator[dict[str, str]]:
    """Base URLs of the running RBAC Envoy and Envoy + ext_authz."""
    with ExitStack() as stack:
        urls = {}
        for name in ("envoy-rbac", "envoy-authz"):
            target = stack.enter_context(SETUPS[name].start(load))
            address = urlsplit(target.request.url)
            urls[name] = f"{address.scheme}://{address.netloc}"
        yield urls


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_rbac_answers_like_authz(load: Workload, envoys: dict[str, str], case: Case) -> None:
    token = _token(load, case)
    statuses = {name: _status(url, case, token) for name, url in envoys.items()}
    assert statuses == {"envoy-rbac": case.status, "envoy-authz": case.status}


@pytest.fixture(scope="module")
def cerbos_target(load: Workload) -> Iterator[str]:
    """The gRPC target of a running Cerbos with the benchmark's policy."""
    try:
        binary = cerbos.ensure_installed(load.cerbos_cache)
    except cerbos.CerbosError as exc:
        pytest.skip(f"Cerbos {cerbos.VERSION} cannot be installed from npm here: {exc}")
    with (
        (load.work / "cerbos-test.log").open("ab") as log,
        cerbos.serve(binary, load.bundle.issuer.jwks_file, load.work, log) as server,
    ):
        yield server.target


# A Cerbos request names a resource and an action, not a method, host or path; the
# caller has mapped those already. Only cases that differ in token and vendor remain.
EXPRESSIBLE = {
    name: case
    for name, case in CASES.items()
    if case.roles is not None and case.method == "GET" and case.host == HOST and not case.suffix
}


@pytest.mark.parametrize("case", list(EXPRESSIBLE.values()), ids=list(EXPRESSIBLE))
def test_cerbos_allows_what_authz_allows(load: Workload, cerbos_target: str, case: Case) -> None:
    token = _token(load, case)
    assert token is not None
    request = cerbos.check_resources(cerbos_target, token, case.vendor)
    effect, _ = cerbos.decide(cerbos_target, request)
    assert effect == ("EFFECT_ALLOW" if case.status == 200 else "EFFECT_DENY")
