"""Remote keys against a real HTTPS identity provider on loopback.

Each test runs a `KeyFetcher` on the test's event loop and verifies tokens with
a `TokenVerifier` that takes its keys from it, as the server does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authz.config import FetchSettings
from authz.identity import KeySet, Token, TokenError, TokenErrorCode, TokenVerifier
from authz.identity.remote import KeyFetcher, RemoteKeySource
from authz.identity.tokens import RemoteJwks
from tests.identity.idp import IdentityProvider
from tests.identity.signing import NOW, claims, ec_key, issuer, rsa_key, sign

#: Quick enough for tests on a busy machine, slow enough never to fire by accident.
FAST = FetchSettings(
    timeout_seconds=2.0,
    refresh_seconds=3600,
    min_refresh_seconds=1,
    max_refresh_seconds=3600,
    cooldown_seconds=30,
    kid_wait_seconds=2.0,
)


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[IdentityProvider]:
    with IdentityProvider(tmp_path, rsa_key("k1")) as running:
        yield running


async def started(settings: FetchSettings = FAST) -> KeyFetcher:
    fetcher = KeyFetcher(settings)
    await fetcher.start()
    return fetcher


@pytest.fixture
async def fetcher() -> AsyncIterator[KeyFetcher]:
    running = await started()
    yield running
    await running.close()


def remote(idp: IdentityProvider, *, discovery: bool = False, ca: bool = True) -> RemoteJwks:
    return RemoteJwks(
        issuer=idp.issuer if discovery else claims()["iss"],
        jwks_uri=None if discovery else idp.jwks_uri,
        ca_pem=idp.ca_file.read_bytes() if ca else None,
    )


def verifier_for(fetcher: KeyFetcher, source: RemoteJwks) -> TokenVerifier:
    trusted = issuer(keys=KeySet.EMPTY, issuer=source.issuer, remote=source)
    return TokenVerifier([trusted], key_provider=fetcher)


def token_for(idp: IdentityProvider, source: RemoteJwks, index: int = -1, **extra: Any) -> str:
    return sign(idp.keys[index], claims(iss=source.issuer, **extra))


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds (fails the test after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def ready_source(fetcher: KeyFetcher, source: RemoteJwks) -> RemoteKeySource:
    await fetcher.ready([source])
    return fetcher.source(source)


def verified(result: Token | TokenError) -> Token:
    assert isinstance(result, Token), result
    return result


def refused(result: Token | TokenError) -> TokenError:
    assert isinstance(result, TokenError), result
    return result


async def test_keys_from_a_jwks_uri_verify_tokens(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    source = remote(idp)
    verifier = verifier_for(fetcher, source)
    await ready_source(fetcher, source)

    assert verified(verifier.verify(token_for(idp, source), NOW)).subject == "user-1"
    status = fetcher.statuses()[0]
    assert (status.ready, status.keys, status.refreshes, status.failures) == (True, 1, 1, 0)
    assert status.url == idp.jwks_uri


async def test_discovery_reads_the_jwks_uri_from_the_issuers_document(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    source = remote(idp, discovery=True)
    verifier = verifier_for(fetcher, source)
    await ready_source(fetcher, source)

    verified(verifier.verify(token_for(idp, source), NOW))
    assert idp.fetches("/.well-known/openid-configuration") == 1
    assert idp.fetches("/jwks") == 1


async def test_a_discovery_document_naming_another_issuer_yields_no_keys(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    idp.discovered_issuer = "https://evil.example.com"
    source = remote(idp, discovery=True)
    verifier = verifier_for(fetcher, source)
    found = await ready_source(fetcher, source)

    error = refused(verifier.verify(token_for(idp, source), NOW))
    assert error.code is TokenErrorCode.KEYS_UNAVAILABLE
    assert idp.fetches("/jwks") == 0
    assert found.status().failures >= 1
    assert "names issuer 'https://evil.example.com'" in str(found.status().last_error)


def _oversized(idp: IdentityProvider) -> None:
    idp.padding = FAST.max_bytes


@pytest.mark.parametrize(
    ("breakage", "ca", "expected_error"),
    [
        pytest.param(lambda idp: None, False, "CERTIFICATE_VERIFY_FAILED", id="untrusted-cert"),
        pytest.param(lambda idp: setattr(idp, "status", 503), True, "HTTP 503", id="http-503"),
        pytest.param(_oversized, True, "larger than", id="oversized"),
        pytest.param(lambda idp: idp.hang.set(), True, "timed out", id="timeout"),
        pytest.param(lambda idp: None, True, None, id="control-unbroken"),
    ],
)
async def test_a_fetch_that_cannot_be_trusted_yields_no_keys(
    idp: IdentityProvider,
    breakage: Callable[[IdentityProvider], None],
    ca: bool,
    expected_error: str | None,
) -> None:
    fetcher = await started(dataclasses.replace(FAST, timeout_seconds=0.5))
    try:
        breakage(idp)
        source = remote(idp, ca=ca)
        verifier = verifier_for(fetcher, source)
        found = await ready_source(fetcher, source)
        result = verifier.verify(token_for(idp, source, 0), NOW)
        status = found.status()
    finally:
        idp.hang.clear()
        # Let the IdP answer the request that timed out, and the client see the
        # connection end: it is still in its TLS shutdown.
        await until(lambda: idp.busy == 0)
        await asyncio.sleep(0.2)
        await fetcher.close()
    if expected_error is None:  # the same set-up, unbroken, works: the breakage is the cause
        verified(result)
        assert status.keys == 1
        return
    assert refused(result).code is TokenErrorCode.KEYS_UNAVAILABLE
    assert expected_error in str(status.last_error)


async def test_a_redirect_is_not_followed(idp: IdentityProvider, fetcher: KeyFetcher) -> None:
    source = dataclasses.replace(remote(idp), jwks_uri=f"{idp.issuer}/moved")
    found = await ready_source(fetcher, source)
    assert found.status().last_error == f"{idp.issuer}/moved: HTTP 302"
    assert idp.fetches("/jwks") == 0


async def test_a_jwks_with_private_key_material_is_refused(
    idp: IdentityProvider, fetcher: KeyFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaky = idp.jwks()
    leaky["keys"][0]["d"] = "AAAA"
    monkeypatch.setattr(idp, "jwks", lambda: leaky)
    found = await ready_source(fetcher, remote(idp))
    assert "private key material" in str(found.status().last_error)
    assert found.keys is KeySet.EMPTY


async def test_an_unknown_kid_refreshes_once_and_concurrent_requests_share_it(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    source = remote(idp)
    verifier = verifier_for(fetcher, source)
    await ready_source(fetcher, source)
    idp.keys.append(ec_key("k2", ec.SECP256R1(), "ES256"))
    tokens = [token_for(idp, source, sub=f"user-{n}") for n in range(20)]

    first = refused(verifier.verify(tokens[0], NOW))
    assert first.code is TokenErrorCode.UNKNOWN_KID
    refresh = fetcher.pending
    assert refresh is not None and not refresh.done()
    for token in tokens[1:]:  # arrive while the refresh runs: they join it
        fetcher.pending = None
        refused(verifier.verify(token, NOW))
        assert fetcher.pending is refresh
    assert await refresh == (True, FAST.refresh_seconds)

    assert [verified(verifier.verify(t, NOW)).subject for t in tokens[:2]] == ["user-0", "user-1"]
    assert idp.fetches() == 2  # the first fetch, and one refresh for twenty requests


async def test_unknown_kids_within_the_cooldown_do_not_fetch_again(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    source = remote(idp)
    verifier = verifier_for(fetcher, source)
    await ready_source(fetcher, source)
    stranger = rsa_key("nobody-has-this")

    refused(verifier.verify(sign(stranger, claims(iss=source.issuer)), NOW))
    assert fetcher.pending is not None
    await fetcher.pending
    fetcher.pending = None
    for n in range(50):  # a flood of made-up kids
        garbage = dataclasses.replace(stranger, kid=f"made-up-{n}")
        assert refused(verifier.verify(sign(garbage, claims(iss=source.issuer)), NOW)).code is (
            TokenErrorCode.UNKNOWN_KID
        )
    assert fetcher.pending is None
    assert idp.fetches() == 2


async def test_a_key_removed_by_the_idp_stops_verifying_even_from_the_cache(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    source = remote(idp)
    verifier = verifier_for(fetcher, source)
    await ready_source(fetcher, source)
    old_token = token_for(idp, source)
    verified(verifier.verify(old_token, NOW))  # now cached

    idp.keys = [rsa_key("k2")]  # the IdP rotated k1 out
    refused(verifier.verify(token_for(idp, source), NOW))  # unknown kid k2: refresh
    assert fetcher.pending is not None
    await fetcher.pending

    verified(verifier.verify(token_for(idp, source), NOW))
    error = refused(verifier.verify(old_token, NOW))
    assert error.code is TokenErrorCode.UNKNOWN_KID


async def test_a_kept_refusal_lapses_when_the_idps_keys_change(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    source = remote(idp)
    verifier = verifier_for(fetcher, source)
    found = await ready_source(fetcher, source)
    other = rsa_key(idp.keys[-1].kid)  # the published kid, another key
    token = sign(other, claims(iss=source.issuer))
    for _ in range(2):  # the second answer is the kept refusal
        assert refused(verifier.verify(token, NOW)).code is TokenErrorCode.BAD_SIGNATURE

    idp.keys = [other]  # the IdP now publishes that key under the same kid
    assert (await found._refresh("test"))[0]

    assert verified(verifier.verify(token, NOW)).subject == "user-1"


async def test_a_refresh_that_finds_the_same_keys_keeps_cached_tokens(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    source = remote(idp)
    verifier = verifier_for(fetcher, source)
    found = await ready_source(fetcher, source)
    cached = verified(verifier.verify(token_for(idp, source), NOW))
    held = found.keys

    assert await found._refresh("test") == (True, FAST.refresh_seconds)

    assert found.keys is held and found.status().refreshes == 2
    assert verifier.verify(token_for(idp, source), NOW) is cached  # the very cached Token


async def test_during_an_outage_the_last_good_keys_keep_serving(
    idp: IdentityProvider,
) -> None:
    fetcher = await started(dataclasses.replace(FAST, refresh_seconds=1, min_refresh_seconds=1))
    try:
        source = remote(idp)
        verifier = verifier_for(fetcher, source)
        found = await ready_source(fetcher, source)
        idp.stop()
        await until(lambda: found.status().failures >= 2)

        token = token_for(idp, source, sub="during-outage")  # not cached: verified now
        assert verified(verifier.verify(token, NOW)).subject == "during-outage"
        status = found.status()
        assert status.ready and status.keys == 1 and "cannot connect" in str(status.last_error)
    finally:
        await fetcher.close()


async def test_never_fetched_keys_refuse_tokens_until_the_idp_comes_back(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    idp.stop()
    source = remote(idp)
    verifier = verifier_for(fetcher, source)
    found = await ready_source(fetcher, source)
    token = token_for(idp, source)

    assert refused(verifier.verify(token, NOW)).code is TokenErrorCode.KEYS_UNAVAILABLE
    assert not found.status().ready and found.status().failures >= 1

    idp.start()  # the retries (1 s, 2 s, ... backoff) find it again
    await until(lambda: found.status().ready)
    verified(verifier.verify(token, NOW))


async def test_cache_control_max_age_schedules_the_next_refresh(
    idp: IdentityProvider, fetcher: KeyFetcher
) -> None:
    idp.cache_control = "public, max-age=1"
    found = await ready_source(fetcher, remote(idp))
    await until(lambda: found.status().refreshes >= 3)  # refresh_seconds alone would be 1 h


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 3600.0),  # no header: refresh_seconds
        ("max-age=600", 600.0),
        ("public, max-age=86400, must-revalidate", 3600.0),  # clamped to max_refresh
        ('max-age="0"', 1.0),  # clamped to min_refresh
        ("no-store", 1.0),
        ("no-cache, max-age=600", 1.0),
        ("s-maxage=600", 3600.0),  # for shared caches only: not ours
    ],
)
async def test_refresh_interval_follows_cache_control_within_bounds(
    idp: IdentityProvider, fetcher: KeyFetcher, header: str | None, expected: float
) -> None:
    idp.cache_control = header
    found = await ready_source(fetcher, remote(idp))
    assert found.status().ready
    refresh = fetcher.source(remote(idp))._refresh("test")
    assert await refresh == (True, expected)
