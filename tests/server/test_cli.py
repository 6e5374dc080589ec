"""`authz validate` and `authz check`: exit codes and the decision JSON (spec §8)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from authz.cli import main
from authz.policy.bundle import load_bundle
from tests.engine.checks import check_request
from tests.policy.bundles import NOW, SigningKey

DECISION_KEYS = [
    "allowed",
    "status",
    "reason",
    "rule",
    "tenant",
    "policy_version",
    "decision_id",
    "would_match",
    "audit",
]
NOW_ARG = "2026-06-01T12:00:00Z"


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    (tmp_path / "b.yaml").write_text(
        "apiVersion: authz/v1\nkind: Policy\nmetadata: {name: b}\n"
        "spec: {rules: [{name: r, action: deny}]}\n"
    )
    (tmp_path / "a.yaml").write_text("apiVersion: authz/v1\nkind: Polcy\n")
    return tmp_path


def _request_file(directory: Path, name: str = "request.json", **fields: Any) -> Path:
    path = directory / name
    path.write_text(json_format.MessageToJson(check_request(**fields)))
    return path


def test_validate_valid_bundle(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(bundle)]) == 0
    out = capsys.readouterr().out
    snapshot = load_bundle(bundle)
    assert out.strip() == (
        f"{bundle}: valid, {len(snapshot.files)} file(s), {len(snapshot.rules.rules)} rule(s), "
        f"version {snapshot.version}"
    )


def test_validate_broken_bundle(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(broken)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "a.yaml:2:7: kind: unknown kind 'Polcy'; expected one of Policy, Issuer, Tenancy, "
        "Revocations, Lockdown, PolicyTest",
        "b.yaml:4:34: spec.rules[0].action: must be ALLOW, DENY or AUDIT",
        "2 error(s)",
    ]


@pytest.mark.parametrize(
    ("fields", "claims", "status", "expected"),
    [
        pytest.param(
            {"path": "/api/v1/vendors/acme/items/1"},
            {"sub": "alice", "tenant": "acme", "roles": ["vendor:staff"]},
            0,
            {
                "allowed": True,
                "status": 200,
                "reason": "allowed",
                "rule": "acme/staff-items",
                "tenant": "acme",
                "would_match": [],
                "audit": [],
            },
            id="allowed",
        ),
        pytest.param(
            {"path": "/api/v1/vendors/globex/items/1"},
            {"tenant": "acme", "roles": ["vendor:staff"]},
            1,
            {
                "allowed": False,
                "status": 403,
                "reason": "cross_tenant",
                "rule": None,
                "tenant": "globex",
                "would_match": [],
                "audit": [],
            },
            id="cross-tenant",
        ),
        pytest.param(
            {"path": "/beta/x"},
            None,
            0,
            {
                "allowed": True,
                "status": 200,
                "reason": "allowed",
                "rule": "public/beta",
                "tenant": "",
                "would_match": ["guardrails/block-beta"],
                "audit": [],
            },
            id="would-match",
        ),
        pytest.param(
            {"path": "/me"},
            None,
            1,
            {
                "allowed": False,
                "status": 401,
                "reason": "missing_token",
                "rule": None,
                "tenant": "",
                "would_match": [],
                "audit": [],
            },
            id="missing-token",
        ),
    ],
)
def test_check(
    bundle: Path,
    key: SigningKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fields: dict[str, Any],
    claims: dict[str, Any] | None,
    status: int,
    expected: dict[str, Any],
) -> None:
    token = key.token(now=NOW, **claims) if claims is not None else None
    request = _request_file(tmp_path, token=token, **fields)
    code = main(["check", "--policies", str(bundle), "--now", NOW_ARG, str(request)])
    output = json.loads(capsys.readouterr().out)
    assert code == status
    assert list(output) == DECISION_KEYS
    decision_id = output.pop("decision_id")
    assert isinstance(decision_id, str) and len(decision_id) == 26
    assert output == {**expected, "policy_version": load_bundle(bundle).version}


def test_check_reads_stdin(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json_format.MessageToJson(check_request(path="/healthz"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["check", "--policies", str(bundle), "--now", NOW_ARG, "-"]) == 0
    assert json.loads(capsys.readouterr().out)["rule"] == "public/health"


@pytest.mark.parametrize(
    ("setup", "extra"),
    [
        pytest.param("not-json", [], id="request-not-json"),
        pytest.param("unknown-field", [], id="request-unknown-field"),
        pytest.param(
            "json-array",
            [],
            id="request-json-array",
        ),
        pytest.param("missing", [], id="request-missing"),
        pytest.param("valid", ["--now", "2026-06-01T12:00:00"], id="now-without-zone"),
        pytest.param("valid", ["--now", "yesterday"], id="now-not-a-time"),
        pytest.param("broken-bundle", [], id="broken-bundle"),
    ],
)
def test_check_bad_input(
    bundle: Path,
    broken: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    extra: list[str],
) -> None:
    request = tmp_path / "request.json"
    policies = broken if setup == "broken-bundle" else bundle
    if setup == "not-json":
        request.write_text("{nope")
    elif setup == "json-array":
        request.write_text("[]")
    elif setup == "unknown-field":
        request.write_text('{"attributes": {"requets": {}}}')
    elif setup != "missing":
        _request_file(tmp_path, path="/healthz")
    args = ["check", "--policies", str(policies), *(extra or ["--now", NOW_ARG]), str(request)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err


@pytest.mark.parametrize(
    ("path", "status"),
    [("/healthz", 0), ("/nothing", 1), (None, 2)],
    ids=["allowed", "denied", "bad-input"],
)
def test_check_exit_status_of_the_real_command(
    bundle: Path, tmp_path: Path, path: str | None, status: int
) -> None:
    request = tmp_path / "bad.json"
    if path is None:
        request.write_text("{nope")
    else:
        request = _request_file(tmp_path, path=path)
    result = subprocess.run(
        [sys.executable, "-m", "authz", "check", "--policies", str(bundle), str(request)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == status, result.stderr
    if path is not None:
        assert list(json.loads(result.stdout)) == DECISION_KEYS


def test_validate_exit_status_of_the_real_command(bundle: Path, broken: Path) -> None:
    def run(policies: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "authz", "validate", str(policies)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert run(bundle).returncode == 0
    failed = run(broken)
    assert failed.returncode == 1
    assert failed.stderr.strip().endswith("2 error(s)")
