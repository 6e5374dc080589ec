"""The real server verifying tokens with keys from a real HTTPS identity provider.

The bundle names the IdP by OIDC discovery with its CA in `caFile`; Check calls
go over gRPC. Rotation under traffic, an IdP that was never reachable, and a
reload that adds an issuer are followed without a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz.admin import AdminConfig, start_admin
from tests.admin.client import TOKEN, Client
from tests.engine.checks import check_request
from tests.identity.idp import IdentityProvider
from tests.identity.signing import AUD, SigningKey, ec_key, rsa_key, sign
from tests.identity.test_remote_keys import FAST, until
from tests.server.serving import Server, serving

STATIC_ISSUER = "https://static.example.com"
SETTINGS = FAST

POLICY = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: api}
spec:
  rules:
    - name: readers
      from: [{roles: [reader]}]
      to: [{methods: [GET], paths: ["/items"]}]
"""


def issuer_yaml(idp: IdentityProvider) -> str:
    return f"""\
apiVersion: authz/v1
kind: Issuer
metadata: {{name: idp}}
spec:
  issuer: {idp.issuer}
  discovery: true
  caFile: idp-ca.pem
  audiences: [{AUD}]
  algorithms: [RS256, ES256]
  rolesClaim: roles
"""


def static_issuer_yaml(key: SigningKey) -> str:
    jwks = json.dumps({"keys": [key.jwk]})
    return f"""\
apiVersion: authz/v1
kind: Issuer
metadata: {{name: static}}
spec:
  issuer: {STATIC_ISSUER}
  jwks: {jwks}
  audiences: [{AUD}]
  algorithms: [ES256]
  rolesClaim: roles
"""


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[IdentityProvider]:
    with IdentityProvider(tmp_path, rsa_key("k1")) as running:
        yield running


@pytest.fixture
def static_key() -> SigningKey:
    return ec_key("static-1", ec.SECP256R1(), "ES256")


def bundle_for(tmp_path: Path, idp: IdentityProvider, static_key: SigningKey) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "idp-ca.pem").write_bytes(idp.ca_file.read_bytes())
    (bundle / "issuer.yaml").write_text(issuer_yaml(idp))
    (bundle / "static.yaml").write_text(static_issuer_yaml(static_key))
    (bundle / "policy.yaml").write_text(POLICY)
    return bundle


def live(key: SigningKey, iss: str, **extra: Any) -> str:
    now = time.time()
    payload = {
        "iss": iss,
        "sub": "u",
        "aud": AUD,
        "roles": ["reader"],
        "iat": now,
        "exp": now + 300,
    }
    return sign(key, {**payload, **extra})


async def reason(server: Server, token: str) -> str:
    response = await server.stub.Check(check_request(path="/items", token=token))
    found: str = json_format.MessageToDict(response.dynamic_metadata)["reason"]
    return found


async def test_tokens_verify_with_keys_found_by_discovery(
    tmp_path: Path, idp: IdentityProvider, static_key: SigningKey
) -> None:
    async with serving(bundle_for(tmp_path, idp, static_key), keys=SETTINGS) as server:
        assert await reason(server, live(idp.keys[0], idp.issuer)) == "allowed"
        assert await reason(server, live(idp.keys[0], idp.issuer, roles=["x"])) == "no_match"
        assert await reason(server, live(rsa_key("k1"), idp.issuer)) == "invalid_token"
        (status,) = server.runtime.keys.statuses()
        assert status.ready and status.url == idp.jwks_uri


async def test_a_key_rotation_under_traffic_fails_no_request(
    tmp_path: Path, idp: IdentityProvider, static_key: SigningKey
) -> None:
    async with serving(bundle_for(tmp_path, idp, static_key), keys=SETTINGS) as server:
        outcomes: Counter[str] = Counter()
        signing = idp.keys[0]
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                outcomes[await reason(server, live(signing, idp.issuer, sub=str(time.time())))] += 1

        clients = [asyncio.create_task(client()) for _ in range(4)]
        await until(lambda: outcomes.total() >= 50)
        new = ec_key("k2", ec.SECP256R1(), "ES256")
        idp.keys = [idp.keys[0], new]  # the IdP publishes k2 ...
        signing = new  # ... and signs with it from now on; we learn of it from the kid
        before = outcomes.total()
        await until(lambda: outcomes.total() >= before + 100)
        idp.keys = [new]  # k1 retired
        stop.set()
        await asyncio.gather(*clients)

        assert set(outcomes) == {"allowed"}, outcomes
        assert idp.fetches() == 2  # at start, and once for k2
        # k1 is gone once the keys are next fetched (here: asked for by another kid).
        assert await reason(server, live(rsa_key("k3"), idp.issuer)) == "invalid_token"
        assert await reason(server, live(rsa_key("k1"), idp.issuer)) == "invalid_token"


async def test_an_idp_never_reached_denies_its_tokens_and_nothing_else(
    tmp_path: Path, idp: IdentityProvider, static_key: SigningKey
) -> None:
    idp.stop()
    async with serving(bundle_for(tmp_path, idp, static_key), keys=SETTINGS) as server:
        assert await reason(server, live(idp.keys[0], idp.issuer)) == "invalid_token"
        assert await reason(server, live(static_key, STATIC_ISSUER)) == "allowed"
        health = health_pb2_grpc.HealthStub(server.channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        (status,) = server.runtime.keys.statuses()
        assert not status.ready and status.failures >= 1

        idp.start()  # back on the same port: the retries find it
        await until(lambda: server.runtime.keys.statuses()[0].ready)
        assert await reason(server, live(idp.keys[0], idp.issuer)) == "allowed"


async def test_a_reload_adding_a_remote_issuer_serves_its_tokens_at_once(
    tmp_path: Path, idp: IdentityProvider, static_key: SigningKey
) -> None:
    bundle = bundle_for(tmp_path, idp, static_key)
    issuer = (bundle / "issuer.yaml").read_text()
    (bundle / "issuer.yaml").unlink()
    async with serving(bundle, keys=SETTINGS) as server:
        assert await reason(server, live(idp.keys[0], idp.issuer)) == "invalid_token"
        version = server.runtime.store.active_version
        (bundle / "issuer.yaml").write_text(issuer)
        await until(lambda: server.runtime.store.active_version != version)
        # The new version was published once its issuer's keys were fetched.
        assert await reason(server, live(idp.keys[0], idp.issuer)) == "allowed"


async def test_the_admin_status_shows_how_remote_keys_are_fetched(
    tmp_path: Path, idp: IdentityProvider, static_key: SigningKey
) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    async with (
        serving(bundle_for(tmp_path, idp, static_key), keys=SETTINGS) as server,
        aiohttp.ClientSession() as session,
    ):
        runtime = server.runtime
        config = AdminConfig(listen="127.0.0.1:0", token_file=token_file)
        admin = await start_admin(runtime.store, runtime.reloader, config, runtime.keys)
        try:
            idp.stop()
            assert await reason(server, live(rsa_key("k9"), idp.issuer)) == "invalid_token"
            await until(lambda: runtime.keys.statuses()[0].failures >= 1)
            status = await Client(session, f"http://127.0.0.1:{admin.port}").call(
                "GET", "/v1/status"
            )
        finally:
            await admin.stop()
    issuers = {issuer["name"]: issuer for issuer in status.body["issuers"]}
    assert issuers["static"] == {"name": "static", "issuer": STATIC_ISSUER, "keys": 1}
    remote = issuers["idp"].pop("remote")
    assert issuers["idp"] == {"name": "idp", "issuer": idp.issuer, "keys": 1}
    assert remote["url"] == idp.jwks_uri
    assert (remote["ready"], remote["refreshes"], remote["failures"]) == (True, 1, 1)
    assert remote["last_success"].endswith("Z")
    assert "cannot connect" in remote["last_error"]
