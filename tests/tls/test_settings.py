"""The mTLS settings of `authz serve`: ServerConfig validation, the flags, the start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from authz.cli import main
from authz.config import ConfigError, ServerConfig
from tests.lifecycle.process import Served
from tests.pki import CertificateAuthority, Issued
from tests.tls.conftest import GATEWAY
from tests.tls.files import CA, CERT, KEY, InPlace, server_files

FILES: dict[str, Any] = {
    "tls_cert": Path("c.pem"),
    "tls_key": Path("k.pem"),
    "client_ca": Path("ca.pem"),
}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param(
            {"tls_cert": Path("c.pem")},
            "tls-cert, tls-key, client-ca: give all three",
            id="cert-only",
        ),
        pytest.param(
            {"tls_cert": Path("c.pem"), "tls_key": Path("k.pem")},
            "tls-cert, tls-key, client-ca: give all three",
            id="no-client-ca",
        ),
        pytest.param(
            {"allow_clients": (GATEWAY,)}, "allow-client: needs tls-cert", id="allow-without-tls"
        ),
        *[
            pytest.param({**FILES, "allow_clients": (entry,)}, "allow-client: ", id=entry)
            for entry in [
                "cluster.local/ns/istio-system/sa/istio-ingressgateway",
                "spiffe://",
                "spiffe:///ns/a",
                "spiffe://cluster.local",
                "spiffe://cluster.local/ns/*/sa/gateway",
                "spiffe://cluster.local/ns/istio-*",
                "spiffe://cluster.local/ns/a /sa/b",
                "*",
            ]
        ],
    ],
)
def test_invalid(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ServerConfig(policies=Path("bundle"), **settings)


@pytest.mark.parametrize(
    "entry",
    [GATEWAY, "spiffe://cluster.local/ns/istio-system/*", "spiffe://cluster.local/*"],
)
def test_valid_allow_list_entries(entry: str) -> None:
    config = ServerConfig(policies=Path("bundle"), **FILES, allow_clients=(entry,))
    assert config.allow_clients == (entry,)


def test_flags_reach_the_config_checks(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--policies", str(bundle), "--allow-client", GATEWAY]) == 2
    assert "authz serve: allow-client: needs tls-cert" in capsys.readouterr().err
    assert main(["serve", "--policies", str(bundle), "--tls-key", "k.pem"]) == 2
    assert "give all three (mTLS) or none" in capsys.readouterr().err


@pytest.fixture
def volume(tmp_path: Path, ca: CertificateAuthority, server_cert: Issued) -> InPlace:
    volume = InPlace(tmp_path / "tls")
    volume.publish(server_files(server_cert, ca))
    return volume


def _flags(volume: InPlace) -> list[str]:
    paths = [volume.path / name for name in (CERT, KEY, CA)]
    return [
        flag
        for name, path in zip(("--tls-cert", "--tls-key", "--client-ca"), paths, strict=True)
        for flag in (name, str(path))
    ]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param({KEY: b"not a key"}, "not an unencrypted PEM private key", id="key-not-pem"),
        pytest.param({CERT: b""}, "no PEM certificate", id="empty-certificate"),
        pytest.param(None, "cannot read", id="missing-client-ca"),
    ],
)
def test_serve_refuses_files_that_cannot_serve(
    bundle: Path, volume: InPlace, damage: dict[str, bytes] | None, message: str
) -> None:
    if damage is None:
        (volume.path / CA).unlink()
    else:
        volume.publish(damage)
    argv = [sys.executable, "-m", "authz", "serve", "--policies", str(bundle)]
    argv += ["--listen", "127.0.0.1:0", *_flags(volume)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "authz serve: tls: " in done.stderr
    assert message in done.stderr
    assert "serving on" not in done.stderr


def test_the_start_log_says_tls_and_the_allow_list_size(bundle: Path, volume: InPlace) -> None:
    allow = ["--allow-client", GATEWAY, "--allow-client", "spiffe://cluster.local/ns/edge/*"]
    with Served(bundle, *_flags(volume), *allow) as served:
        log = "".join(served.seen)
    assert "tls: mTLS, client certificates required; allow-list: 2 client ID(s)" in log
    assert re.search(r"tls: serving certificate serial [0-9a-f]+ \(expires ", log)
    assert "PRIVATE KEY" not in log
    with Served(bundle) as plaintext:
        assert "tls: off, plaintext gRPC" in "".join(plaintext.seen)


def _environment(volume: InPlace, **more: str) -> dict[str, str]:
    files = {"AUTHZ_TLS_CERT": CERT, "AUTHZ_TLS_KEY": KEY, "AUTHZ_CLIENT_CA": CA}
    return {
        **os.environ,
        **{variable: str(volume.path / name) for variable, name in files.items()},
        **more,
    }


def test_the_environment_gives_the_files_and_the_allow_list(bundle: Path, volume: InPlace) -> None:
    allowed = f"{GATEWAY}, spiffe://cluster.local/ns/edge/*"
    with Served(bundle, env=_environment(volume, AUTHZ_ALLOW_CLIENTS=allowed)) as served:
        log = "".join(served.seen)
    assert "tls: mTLS, client certificates required; allow-list: 2 client ID(s)" in log


def test_allow_client_flags_replace_the_environments_list(bundle: Path, volume: InPlace) -> None:
    # The variable's entry is not a SPIFFE ID: were it used, the server would refuse to start.
    env = _environment(volume, AUTHZ_ALLOW_CLIENTS="not-a-spiffe-id")
    with Served(bundle, "--allow-client", GATEWAY, env=env) as served:
        log = "".join(served.seen)
    assert "allow-list: 1 client ID(s)" in log


def test_an_allow_list_from_the_environment_is_checked_like_the_flag(bundle: Path) -> None:
    argv = [sys.executable, "-m", "authz", "serve", "--policies", str(bundle)]
    env = {**os.environ, "AUTHZ_ALLOW_CLIENTS": GATEWAY}
    done = subprocess.run(
        [*argv, "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "authz serve: allow-client: needs tls-cert" in done.stderr
