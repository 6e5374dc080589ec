"""The `authz` command line as users run it: the admin API behind `authz serve`,
and the authoring commands, each through `python -m authz` in a real process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format

from tests.engine.checks import check_request
from tests.lifecycle.process import Served
from tests.policy.bundles import SigningKey

REPO = Path(__file__).resolve().parent.parent
ADMIN_ON = re.compile(r"admin API on 127\.0\.0\.1:(\d+)")
TOKEN = "an-admin-token-of-some-length-0123456789"


def _authz(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", copy)
    key = SigningKey.generate(tmp_path)
    shutil.copyfile(key.jwks_path, copy / "keys" / "demo-jwks.json")
    return copy


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin-token"
    path.write_text(TOKEN)
    path.chmod(0o600)
    return path


def test_serve_runs_the_admin_api_with_a_token(bundle: Path, token_file: Path) -> None:
    flags = ("--admin-listen", "127.0.0.1:0", "--admin-token-file", str(token_file))
    with Served(bundle, *flags) as served:
        port = _admin_port(served)
        url = f"http://127.0.0.1:{port}"
        admin = ("admin", "--url", url, "--token-file", str(token_file))
        status = _authz(*admin, "status")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["active_version"].startswith("sha256:")
        locked = _authz(*admin, "lockdown", "--name", "inc-1", "--reason", "test incident")
        assert locked.returncode == 0, locked.stderr
        assert "inc-1" in _authz(*admin, "status").stdout
        assert _authz(*admin, "release", "inc-1").returncode == 0
        assert _authz("admin", "--url", url, "status").returncode == 1  # no token


def _admin_port(served: Served) -> int:
    for line in served.seen:
        if match := ADMIN_ON.search(line):
            return int(match.group(1))
    return int(served.wait_for(ADMIN_ON, timeout=5).group(1))


def test_an_admin_address_without_credentials_is_refused(bundle: Path) -> None:
    result = _authz("serve", "--policies", str(bundle), "--admin-listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "must authenticate" in result.stderr


def test_without_credentials_there_is_no_admin_api(bundle: Path) -> None:
    with Served(bundle) as served:
        assert any("admin API off" in line for line in served.seen)


def test_policy_tests_of_the_example_bundle_pass() -> None:
    result = _authz("test", str(REPO / "policies"), "--min-coverage", "100")
    assert result.returncode == 0, result.stdout + result.stderr


def test_diff_of_a_bundle_with_itself_is_empty() -> None:
    policies = str(REPO / "policies")
    assert _authz("diff", policies, policies).returncode == 0


def test_check_explains_on_request(bundle: Path) -> None:
    request = check_request(path="/healthz", host="api.shop.example.com")
    body = json.dumps(json_format.MessageToDict(request))
    result = _authz("check", "--policies", str(bundle), "--explain", "-", stdin=body)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["allowed"] is True
    assert "health" in result.stderr
