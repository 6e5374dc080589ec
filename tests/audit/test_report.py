"""`authz report` from a decision log written by the real server."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest

from authz.audit import AuditConfig
from authz.cli import main
from tests.audit.conftest import read_lines
from tests.engine.checks import check_request
from tests.policy.bundles import SigningKey
from tests.server.serving import live_token, serving

PAY = "pay.payments.svc.cluster.local"
WORKLOAD = "spiffe://cluster.local/ns/shop/sa/web"


@pytest.fixture
async def log(tmp_path: Path, bundle: Path, key: SigningKey) -> Path:
    """A log of 10 decisions: 3 allowed, 1 denied by rule, 3 default denies, 3 refused."""
    path = tmp_path / "decisions.log"
    staff = live_token(key, sub="alice", tenant="acme", roles=["vendor:staff"])
    admin = live_token(key, sub="root", roles=["platform:admin"])
    requests = [
        check_request(path="/api/v1/vendors/acme/items/1", token=staff, principal=WORKLOAD),
        check_request(path="/api/v1/vendors/acme/items/2", token=staff),
        check_request(path="/api/v1/vendors/acme/items/3", token=staff),
        check_request(method="DELETE", path="/api/v1/payments/p1", host=PAY, token=admin),
        check_request(path="/nothing"),
        check_request(path="/nothing"),
        check_request(path="/me"),
        check_request(path="/api/v1/vendors/globex/items/1", token=staff),
        check_request(path="/api/v1/vendors/globex/items/2", token=staff),
        check_request(path="/me", token="garbage"),
    ]
    async with serving(bundle, audit=AuditConfig(decision_log=str(path))) as server:
        for request in requests:
            await server.stub.Check(request)
    return path


@pytest.mark.asyncio
async def test_report_numbers_match_the_log(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = read_lines(log)
    reasons = [record["reason"] for record in records]
    assert reasons.count("allowed") == 3 and reasons.count("cross_tenant") == 2
    out = tmp_path / "report"

    assert main(["report", str(log), "--out", str(out)]) == 0

    assert "10 decisions, 7 denied, 10 conforming" in capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert f"10 decisions from {records[0]['time']} to {records[-1]['time']}" in text
    assert "3 allowed, 7 denied." in text
    for row in (
        "| no_match | 2 |",
        "| cross_tenant | 2 |",
        "| missing_token | 1 |",
        "| invalid_token | 1 |",
        "| denied | 1 |",
        "| globex | 2 |",
        "| GET /nothing | 2 |",
        "| alice → globex | 2 |",
        "| verified mTLS workload identity (source principal) | 1 | 10.00% |",
        "| decided by an explicit rule (allow or deny rule) | 4 | 40.00% |",
        "| default deny (no_match, missing_token) | 3 | 30.00% |",
        f"| {records[0]['policy_version']} | {records[0]['time']} | {records[-1]['time']} |",
    ):
        assert row in text, row
    assert "**No allow in these logs lacks a rule or a policy version" in text
    assert "(100.00%)" in text and "the log is complete as far as the server knows" in text
    html = (out / "report.html").read_text()
    assert "<td>cross_tenant</td><td>2</td>" in html
    for name in ("decisions-over-time.png", "denials-by-reason.png", "denials-by-tenant.png"):
        assert f"({name})" in text and f'src="{name}"' in html
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = matplotlib.image.imread(out / name).shape
        assert height > 100 and width > 100


def test_an_allow_without_a_rule_is_reported(tmp_path: Path) -> None:
    log = tmp_path / "tampered.log"
    log.write_text(
        '{"type":"decision","time":"2026-06-01T12:00:00.000Z","allowed":true,"status":200,'
        '"reason":"allowed","rule":null,"tenant":"","policy_version":"sha256:x"}\n'
        '{"type":"records_lost","time":"2026-06-01T12:00:01.000Z","kept":3,"sheddable":0}\n'
        "not json\n"
    )
    out = tmp_path / "report"
    assert main(["report", str(log), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "Allows without a rule: 1." in text
    assert "0 of 1 decisions (0.00%)" in text
    assert "deny records lost 3" in text and "unreadable lines 1" in text
    assert "the log is NOT complete" in text
    assert "No allow in these logs lacks" not in text
