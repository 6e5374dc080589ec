"""Audit settings that cannot work, or would leak credentials, are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authz.audit import AuditConfig
from authz.cli import main
from authz.config import ConfigError

REFUSED = [
    pytest.param({"log_headers": ("authorization",)}, "carries credentials", id="authorization"),
    pytest.param({"log_headers": ("cookie",)}, "carries credentials", id="cookie"),
    pytest.param({"log_headers": ("set-cookie",)}, "carries credentials", id="set-cookie"),
    pytest.param({"log_headers": ("proxy-authorization",)}, "credentials", id="proxy-auth"),
    pytest.param({"log_headers": ("X-Upper",)}, "lower-case", id="upper-case"),
    pytest.param({"webhook": "http://hooks.example/x"}, "loopback", id="plain-http-remote"),
    pytest.param({"webhook": "ftp://127.0.0.1/x"}, "not an http", id="ftp"),
    pytest.param({"webhook": "https://u:p@hooks.example/"}, "no credentials", id="userinfo"),
    pytest.param({"webhook_token_file": Path("t")}, "needs --security-webhook", id="token-only"),
    pytest.param({"max_bytes": 10}, "at least 1024", id="tiny-file"),
    pytest.param({"queue_allows": 0}, "at least 1", id="no-queue"),
]


@pytest.mark.parametrize(("settings", "message"), REFUSED)
def test_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AuditConfig(**settings)


@pytest.mark.parametrize(
    "url", ["https://hooks.example/x", "http://127.0.0.1:8080/x", "http://localhost/x"]
)
def test_webhooks_accepted(url: str) -> None:
    assert AuditConfig(webhook=url).webhook == url


def test_serve_refuses_a_credential_header(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--policies", str(bundle), "--decision-log", "-"]
    assert main([*argv, "--log-header", "Cookie"]) == 2
    assert "'cookie' carries credentials" in capsys.readouterr().err
