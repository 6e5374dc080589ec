"""Lockdown (spec §3b, §5 step 3) and Revocations (spec §3a, §5 step 4) through ``decide``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from authz.decision import Reason
from authz.engine import decide
from authz.errors import BundleError
from authz.policy.bundle import Snapshot
from tests.engine.checks import attributes
from tests.policy.bundles import ISSUER, ISSUER_YAML, NOW, SigningKey, compile_bundle

OPEN = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: open}
spec:
  rules: [{name: all}]
"""
BREAK_GLASS = "spiffe://cluster.local/ns/ops/sa/break-glass"
TENANCY = """\
apiVersion: authz/v1
kind: Tenancy
metadata: {name: vendors}
spec:
  target: [{pathTemplate: "/vendors/{tenant}/{**}"}]
"""


def _lockdown(body: str) -> str:
    return f"apiVersion: authz/v1\nkind: Lockdown\nmetadata: {{name: incident}}\nspec:\n{body}"


def _bundle(tmp_path: Path, key: SigningKey, **documents: str) -> Snapshot:
    files = {"i.yaml": ISSUER_YAML, "open.yaml": OPEN, "t.yaml": TENANCY}
    files.update({f"{name}.yaml": text for name, text in documents.items()})
    return compile_bundle(tmp_path / "bundle", files, key)


LOCKDOWN_CASES = [
    pytest.param("", "/x", None, None, Reason.LOCKDOWN, id="everything-locked"),
    pytest.param(
        "  exemptPaths: [/healthz]\n", "/healthz", None, None, Reason.ALLOWED, id="exempt"
    ),
    pytest.param(
        "  exemptPaths: ['/status/{**}']\n", "/status/db", None, None, Reason.ALLOWED, id="template"
    ),
    pytest.param(
        f"  exemptPrincipals: ['{BREAK_GLASS}']\n",
        "/x",
        BREAK_GLASS,
        None,
        Reason.ALLOWED,
        id="break-glass-workload",
    ),
    pytest.param("  tenant: acme\n", "/vendors/acme/x", None, None, Reason.LOCKDOWN, id="tenant"),
    pytest.param(
        "  tenant: acme\n", "/vendors/globex/x", None, None, Reason.ALLOWED, id="other-tenant"
    ),
    pytest.param("  tenant: acme\n", "/x", None, "acme", Reason.LOCKDOWN, id="token-tenant"),
    pytest.param(
        "  expires: '2026-06-01T11:00:00Z'\n", "/x", None, None, Reason.ALLOWED, id="expired"
    ),
    pytest.param(
        "  expires: 2026-06-01T13:00:00Z\n", "/x", None, None, Reason.LOCKDOWN, id="not-expired"
    ),
]


@pytest.mark.parametrize(("extra", "path", "principal", "tenant", "reason"), LOCKDOWN_CASES)
def test_lockdown(
    tmp_path: Path,
    key: SigningKey,
    extra: str,
    path: str,
    principal: str | None,
    tenant: str | None,
    reason: Reason,
) -> None:
    snapshot = _bundle(tmp_path, key, lockdown=_lockdown("  reason: INC-4711\n" + extra))
    token = key.token(tenant=tenant) if tenant else None
    decision = decide(snapshot, attributes(path=path, principal=principal, token=token), NOW)
    assert decision.reason is reason
    if reason is Reason.LOCKDOWN:
        assert decision.status == 403
        assert "INC-4711" in decision.detail


def test_lockdown_comes_before_invalid_token(tmp_path: Path, key: SigningKey) -> None:
    snapshot = _bundle(tmp_path, key, lockdown=_lockdown("  reason: r\n"))
    decision = decide(snapshot, attributes(path="/x", token="not.a.token"), NOW)
    assert decision.reason is Reason.LOCKDOWN


def test_tcp_check_is_locked_down(tmp_path: Path, key: SigningKey) -> None:
    snapshot = _bundle(tmp_path, key, lockdown=_lockdown("  reason: r\n  exemptPaths: ['*']\n"))
    assert decide(snapshot, attributes(tcp=True), NOW).reason is Reason.LOCKDOWN


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param("  tenant: acme\n", "missing required field 'reason'", id="no-reason"),
        pytest.param("  reason: r\n  expires: '2026-06-01T11:00:00'\n", "time zone", id="naive"),
        pytest.param("  reason: r\n  expires: tomorrow\n", "RFC 3339", id="not-a-time"),
        pytest.param("  reason: r\n  exemptPaths: ['/a/*/b']\n", "'*' may only", id="pattern"),
        pytest.param("  reason: r\n  until: x\n", "unknown field 'until'", id="unknown-field"),
    ],
)
def test_lockdown_errors(tmp_path: Path, key: SigningKey, body: str, message: str) -> None:
    with pytest.raises(BundleError) as caught:
        _bundle(tmp_path, key, lockdown=_lockdown(body))
    assert any(message in str(error) for error in caught.value.errors), caught.value.errors


def _revocations(body: str) -> str:
    return f"apiVersion: authz/v1\nkind: Revocations\nmetadata: {{name: inc}}\nspec:\n{body}"


def _certificate(serial: int) -> str:
    """A self-signed certificate, URL-encoded PEM as Envoy sends ``source.certificate``."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "workload")])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .sign(private, hashes.SHA256())
    )
    return quote(certificate.public_bytes(serialization.Encoding.PEM).decode(), safe="")


def test_revoked_token_id_and_subject(tmp_path: Path, key: SigningKey) -> None:
    body = f"  tokenIds: [jti-1]\n  subjects: ['{ISSUER}/mallory']\n"
    snapshot = _bundle(tmp_path, key, rev=_revocations(body))
    for token in (key.token(jti="jti-1"), key.token(sub="mallory")):
        decision = decide(snapshot, attributes(path="/x", token=token), NOW)
        assert (decision.reason, decision.status) == (Reason.REVOKED, 401)
    fine = decide(snapshot, attributes(path="/x", token=key.token(jti="jti-2")), NOW)
    assert fine.reason is Reason.ALLOWED


def test_revocations_merge_across_documents(tmp_path: Path, key: SigningKey) -> None:
    snapshot = _bundle(
        tmp_path,
        key,
        one=_revocations("  tokenIds: [a]\n"),
        two=_revocations("  tokenIds: [b]\n").replace("name: inc", "name: inc2"),
    )
    for jti in ("a", "b"):
        decision = decide(snapshot, attributes(path="/x", token=key.token(jti=jti)), NOW)
        assert decision.reason is Reason.REVOKED


def test_revoked_certificate_serial(tmp_path: Path, key: SigningKey) -> None:
    snapshot = _bundle(tmp_path, key, rev=_revocations("  certificateSerials: ['0A:1B:2C']\n"))
    revoked = attributes(path="/x")._replace(certificate=_certificate(0x0A1B2C))
    other = attributes(path="/x")._replace(certificate=_certificate(0x0A1B2D))
    garbage = attributes(path="/x")._replace(certificate="not-a-certificate")
    decision = decide(snapshot, revoked, NOW)
    assert (decision.reason, decision.status) == (Reason.REVOKED, 403)
    assert decide(snapshot, other, NOW).reason is Reason.ALLOWED
    # With serials revoked, a certificate that cannot be read cannot be cleared.
    assert decide(snapshot, garbage, NOW).reason is Reason.REVOKED


def test_revocations_need_a_field(tmp_path: Path, key: SigningKey) -> None:
    with pytest.raises(BundleError) as caught:
        _bundle(tmp_path, key, rev=_revocations("  {}\n"))
    assert any("names nothing to revoke" in str(e) for e in caught.value.errors)


def test_unhashable_jti_is_not_an_error(tmp_path: Path, key: SigningKey) -> None:
    snapshot = _bundle(tmp_path, key, rev=_revocations("  tokenIds: [a]\n"))
    token = key.token(jti=["a"])
    assert decide(snapshot, attributes(path="/x", token=token), NOW).reason is Reason.ALLOWED
