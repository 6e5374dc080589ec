"""`authz admin` against running admin APIs: one server, and a fleet of two."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from authz import admin as admin_api
from authz import admin_cli
from authz.admin_cli import Replica, fleet_replicas, main
from tests.admin.conftest import Admin, running_admin
from tests.policy.bundles import SigningKey

EXTRA_POLICY = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: extra}
spec:
  rules: [{name: docs, to: [{methods: [GET], paths: [/docs]}]}]
"""


async def _admin(
    capsys: pytest.CaptureFixture[str], admin: Admin, token_file: Path, *argv: str
) -> tuple[int, dict[str, Any]]:
    """Run `authz admin --url … --token-file … ARGV` in a thread (it has its own loop)."""
    full = ["--url", admin.url, "--token-file", str(token_file), *argv]
    status = await asyncio.to_thread(main, full)
    out = capsys.readouterr().out
    return status, json.loads(out)


async def test_status_reload_rollback_unpin(
    admin: Admin, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = admin.store.active_version
    status, body = await _admin(capsys, admin, token_file, "status")
    assert status == 0
    assert body["active_version"] == first

    (admin.bundle / "extra.yaml").write_text(EXTRA_POLICY)
    status, body = await _admin(capsys, admin, token_file, "reload")
    assert (status, body["reloaded"]) == (0, True)
    second = body["active_version"]

    status, body = await _admin(capsys, admin, token_file, "rollback", first)
    assert (status, body["pinned"], body["active_version"]) == (0, first, first)
    status, body = await _admin(capsys, admin, token_file, "unpin")
    assert (status, body["pinned"], body["active_version"]) == (0, None, second)

    status, body = await _admin(capsys, admin, token_file, "rollback", "sha256:nope")
    assert (status, body["error"]) == (1, "unknown_version")


async def test_lockdown_and_release(
    admin: Admin, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["lockdown", "--name", "inc-1", "--reason", "INC-1", "--tenant", "acme"]
    argv += ["--exempt-path", "/healthz", "--exempt-path", "/readyz"]
    argv += ["--exempt-principal", "cluster.local/ns/ops/sa/break-glass"]
    argv += ["--expires", "2099-01-01T00:00:00Z"]
    status, body = await _admin(capsys, admin, token_file, *argv)
    assert status == 0, body
    assert body["lockdown"]["exemptPaths"] == ["/healthz", "/readyz"]
    (entry,) = admin.store.lockdowns
    assert (entry.lockdown.tenant, entry.actor) == ("acme", "token")

    status, body = await _admin(capsys, admin, token_file, "release", "inc-1")
    assert (status, body["released"]) == (0, "inc-1")
    status, body = await _admin(capsys, admin, token_file, "release", "inc-1")
    assert (status, body["error"]) == (1, "unknown_lockdown")

    status, body = await _admin(
        capsys, admin, token_file, "lockdown", "--name", "x", "--reason", ""
    )
    assert (status, body["error"]) == (1, "invalid_lockdown")
    argv = ["lockdown", "--name", "x", "--reason", "r", "--tenant", ""]
    status, body = await _admin(capsys, admin, token_file, *argv)
    assert (status, body["problems"]) == (1, ["tenant: must not be empty"])


async def test_without_the_token_it_fails(
    admin: Admin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token-at-all\n")
    status, body = await _admin(capsys, admin, wrong, "status")
    assert (status, body["error"]) == (1, "unauthorized")


async def test_an_unreachable_server_fails(
    token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    argv = ["--url", f"http://127.0.0.1:{port}", "--token-file", str(token_file), "status"]
    assert await asyncio.to_thread(main, argv) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "unreachable"


async def test_fleet_of_two_with_skew(
    tmp_path: Path,
    key: SigningKey,
    token_file: Path,
    session: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with (
        running_admin(tmp_path / "one", key, token_file, session) as one,
        running_admin(tmp_path / "two", key, token_file, session) as two,
    ):
        fleet = f"127.0.0.1:{one.server.port},127.0.0.1:{two.server.port}"
        base = ["--token-file", str(token_file), "--fleet", fleet]

        status, report = await _fleet(capsys, *base, "status")
        assert (status, report["ok"], report["skew"]) == (0, True, False)
        assert report["versions"] == [one.store.active_version]
        assert [r["replica"] for r in report["replicas"]] == fleet.split(",")

        (two.bundle / "extra.yaml").write_text(EXTRA_POLICY)
        await two.client.ok("POST", "/v1/reload", {})
        status, report = await _fleet(capsys, *base, "status")
        assert (status, report["skew"]) == (0, True)
        assert len(report["versions"]) == 2

        # A version only `two` has loaded: `one` answers 404, `two` pins it.
        status, report = await _fleet(capsys, *base, "rollback", two.store.active_version)
        assert (status, report["ok"]) == (1, False)
        assert [r["status"] for r in report["replicas"]] == [404, 200]
        assert two.store.pinned == two.store.active_version

        status, report = await _fleet(capsys, *base, "lockdown", "--name", "all", "--reason", "r")
        assert (status, report["ok"]) == (0, True)
        assert [len(admin.store.lockdowns) for admin in (one, two)] == [1, 1]
        assert report["replicas"][1]["active_version"] == two.store.active_version


async def _fleet(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    status = await asyncio.to_thread(main, list(argv))
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("target", "url", "expected"),
    [
        pytest.param(
            "10.0.0.1:9192,10.0.0.2:9300",
            "http://127.0.0.1:9192",
            [
                Replica("http://10.0.0.1:9192", "10.0.0.1:9192"),
                Replica("http://10.0.0.2:9300", "10.0.0.2:9300"),
            ],
            id="list",
        ),
        pytest.param(
            "[fd00::1]:9192, admin-1.svc:9192",
            "https://x:1",
            [
                Replica("https://[fd00::1]:9192", "[fd00::1]:9192"),
                Replica("https://admin-1.svc:9192", "admin-1.svc:9192"),
            ],
            id="ipv6-and-names",
        ),
        pytest.param(
            "127.0.0.1",
            "https://authz-admin:9444",
            [Replica("https://127.0.0.1:9444", "127.0.0.1:9444", "127.0.0.1")],
            id="dns-name-port-from-url",
        ),
    ],
)
def test_fleet_targets(target: str, url: str, expected: list[Replica]) -> None:
    assert fleet_replicas(target, url) == expected


def test_a_dns_name_stands_for_each_of_its_addresses() -> None:
    replicas = fleet_replicas("localhost", "http://127.0.0.1")
    assert Replica("http://127.0.0.1:9192", "127.0.0.1:9192", "localhost") in replicas
    assert all(replica.server_hostname == "localhost" for replica in replicas)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_default_address_is_the_servers() -> None:
    assert admin_cli.DEFAULT_ADMIN_LISTEN == admin_api.DEFAULT_ADMIN_LISTEN


def test_runs_as_a_module_without_loading_aiohttp_for_help() -> None:
    code = (
        "import sys, runpy; sys.argv = ['authz.admin_cli', '--help']\n"
        "try:\n    runpy.run_module('authz.admin_cli', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert exit.code == 0\n"
        "assert 'aiohttp' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--fleet TARGET" in done.stdout
