"""``--decision-cache`` and ``--decision-cache-ttl``: refused when they cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz.cli import main
from authz.config import ConfigError, ServerConfig


@pytest.mark.parametrize(
    ("size", "ttl", "message"),
    [
        (-1, 1.0, "decision-cache: must be between 0"),
        (10_000_001, 1.0, "decision-cache: must be between 0"),
        (10, 0.0, "decision-cache-ttl: must be more than 0"),
        (10, 60.5, "decision-cache-ttl: must be more than 0 and at most 60"),
    ],
    ids=["negative", "too-many", "no-ttl", "ttl-too-long"],
)
def test_settings_that_cannot_work_are_refused(
    bundle: Path, size: int, ttl: float, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig(policies=bundle, decision_cache=size, decision_cache_ttl_seconds=ttl)


def test_off_by_default_and_on_with_the_environment(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ServerConfig(policies=bundle).decision_cache == 0
    monkeypatch.setenv("AUTHZ_DECISION_CACHE", "-5")  # read by the CLI, refused by the config
    assert main(["serve", "--policies", str(bundle)]) == 2
    assert "authz serve: decision-cache: must be between 0" in capsys.readouterr().err
