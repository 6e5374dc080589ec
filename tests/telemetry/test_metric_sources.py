"""The metrics read from the parts that count: the shadow, CEL errors, the decision log,
remote issuer keys. Each is read when /metrics is scraped, from the real part."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from authz.audit import AuditConfig
from authz.config import TelemetrySettings
from authz.decision import Decision, Reason
from authz.observe import Checked
from authz.telemetry import CheckCounts, Metrics
from tests.admin.conftest import make_store
from tests.engine.checks import check_request
from tests.identity import signing
from tests.identity.idp import IdentityProvider
from tests.identity.test_remote_keys import until
from tests.identity.test_remote_keys_served import SETTINGS, bundle_for, idp, static_key
from tests.policy.bundles import SigningKey
from tests.server.serving import live_token, serving
from tests.shadow import bundles
from tests.telemetry.scrape import promtool, scrape, value

__all__ = ["idp", "static_key"]


async def test_shadow_mismatches_by_kind(tmp_path: Path, key: SigningKey) -> None:
    active = bundles.active(tmp_path / "active", key)
    candidate = bundles.candidate(tmp_path / "candidate", key)
    telemetry = TelemetrySettings(metrics_listen="127.0.0.1:0")
    async with serving(active, shadow_policies=candidate, telemetry=telemetry) as server:
        staff = live_token(key, sub="s", tenant="acme", roles=["vendor:staff"])
        for method in ("GET", "PUT", "GET"):  # narrowed, widened, narrowed
            path = f"{bundles.ITEMS}/1"
            await server.stub.Check(check_request(method=method, path=path, token=staff))
        shadow = server.runtime.shadow
        assert shadow is not None
        await until(lambda: shadow.evaluated == 3)
        assert server.runtime.telemetry is not None and server.runtime.telemetry.listener
        text = await scrape(f"http://127.0.0.1:{server.runtime.telemetry.listener.port}/metrics")

    assert value(text, "authz_shadow_mismatches_total", kind="narrowed") == 2
    assert value(text, "authz_shadow_mismatches_total", kind="widened") == 1
    assert value(text, "authz_shadow_mismatches_total", kind="changed") == 0
    assert value(text, "authz_shadow_evaluations_total", result="evaluated") == 3
    assert value(text, "authz_shadow_evaluations_total", result="dropped") == 0


class DecisionLog:
    """What the decision log exposes: its drop counters."""

    allow_dropped = 3
    deny_dropped = 1


def test_cel_errors_by_rule_and_decision_log_drops(bundle: Path) -> None:
    store, reloader = make_store(bundle)
    counts = CheckCounts()
    metrics = Metrics(counts, store, reloader, decision_log=DecisionLog())
    failed = Decision(Reason.NO_MATCH, cel_errors=("refund-limit", "owner-only"))
    for decision in (failed, Decision(Reason.NO_MATCH, cel_errors=("refund-limit",))):
        counts.checked(Checked(decision, "id", "v1", None, datetime.now(UTC), 0, 40_000))

    text = metrics.exposition()
    assert value(text, "authz_cel_errors_total", rule="refund-limit") == 2
    assert value(text, "authz_cel_errors_total", rule="owner-only") == 1
    assert value(text, "authz_decision_log_records_dropped_total", kind="allow") == 3
    assert value(text, "authz_decision_log_records_dropped_total", kind="deny") == 1
    assert value(text, "authz_check_duration_seconds_bucket", le="5e-05") == 2
    promtool("check", "metrics", stdin=text)


async def test_remote_keys_by_issuer_and_result(
    tmp_path: Path, idp: IdentityProvider, static_key: signing.SigningKey
) -> None:
    idp.stop()
    telemetry = TelemetrySettings(metrics_listen="127.0.0.1:0")
    bundle = bundle_for(tmp_path, idp, static_key)
    async with serving(bundle, keys=SETTINGS, telemetry=telemetry) as server:
        assert server.runtime.telemetry is not None and server.runtime.telemetry.listener
        url = f"http://127.0.0.1:{server.runtime.telemetry.listener.port}/metrics"
        down = await scrape(url)
        idp.start()  # back on the same port: the retries find it
        await until(lambda: server.runtime.keys.statuses()[0].ready)
        up = await scrape(url)

    issuer = {"issuer": idp.issuer}
    assert value(down, "authz_jwks_keys_ready", **issuer) == 0
    assert value(down, "authz_jwks_refreshes_total", result="failure", **issuer) >= 1
    assert value(down, "authz_jwks_refreshes_total", result="success", **issuer) == 0
    assert value(up, "authz_jwks_keys_ready", **issuer) == 1
    assert value(up, "authz_jwks_refreshes_total", result="success", **issuer) == 1


async def test_the_running_decision_log_reports_its_drops(
    tmp_path: Path, bundle: Path, key: SigningKey
) -> None:
    log = tmp_path / "decisions.jsonl"
    telemetry = TelemetrySettings(metrics_listen="127.0.0.1:0")
    async with serving(bundle, audit=AuditConfig(decision_log=str(log)), telemetry=telemetry) as (
        server
    ):
        assert server.runtime.telemetry is not None and server.runtime.telemetry.listener
        for _ in range(3):
            await server.stub.Check(check_request(path="/", token=live_token(key, sub="a")))
        port = server.runtime.telemetry.listener.port
        text = await scrape(f"http://127.0.0.1:{port}/metrics")

    assert value(text, "authz_decision_log_records_dropped_total", kind="allow") == 0
    assert value(text, "authz_decision_log_records_dropped_total", kind="deny") == 0
    assert value(text, "authz_checks_total", decision="deny", reason="no_match") == 3
