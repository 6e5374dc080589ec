"""Fixtures of the telemetry tests: the shop bundle and its key, as the server tests use
them, and an exposition with every metric the service has."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec

from authz.decision import Decision, Reason
from authz.decision_cache import DecisionCache
from authz.identity.remote import KeyFetcher
from authz.observe import Checked
from authz.policy.bundle import load_bundle
from authz.reload import Reloader
from authz.shadow import Shadow
from authz.store import SnapshotStore
from authz.telemetry import CheckCounts, Metrics
from tests.identity.idp import IdentityProvider
from tests.identity.signing import ec_key, rsa_key
from tests.identity.test_remote_keys_served import SETTINGS, bundle_for
from tests.server.conftest import bundle, key

__all__ = ["bundle", "every_metric", "key"]


class DecisionLog:
    """What the decision log exposes: its drop counters."""

    allow_dropped = 3
    deny_dropped = 1


@pytest_asyncio.fixture
async def every_metric(tmp_path: Path) -> AsyncIterator[str]:
    """The exposition of a server with every source: remote keys from a real IdP, a shadow,
    a decision log, Checks with CEL errors; each metric has at least one sample."""
    with IdentityProvider(tmp_path, rsa_key("k1")) as idp:
        directory = bundle_for(tmp_path, idp, ec_key("static-1", ec.SECP256R1(), "ES256"))
        keys = KeyFetcher(SETTINGS)
        await keys.start()
        try:
            snapshot = load_bundle(directory, key_provider=keys)
            await keys.ready(issuer.remote for issuer in snapshot.issuers if issuer.remote)
            store = SnapshotStore(snapshot)
            shadow = Shadow(SnapshotStore(snapshot), store)
            counts = CheckCounts(tenant_limit=2)
            metrics = Metrics(
                counts,
                store,
                Reloader(store, directory),
                keys=keys,
                shadow=shadow,
                decision_log=DecisionLog(),
                decision_cache=DecisionCache(10, 1.0),
            )
            failed = Decision(Reason.NO_MATCH, tenant="acme", cel_errors=("refund-limit",))
            counts.checked(Checked(failed, "id", "v1", None, datetime.now(UTC), 0, 40_000))
            yield metrics.exposition()
        finally:
            await keys.close()
