"""`authz serve --shadow-policies` / AUTHZ_SHADOW_POLICIES, as a real process, and its setting."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from authz.cli import main
from authz.config import ConfigError, ServerConfig
from tests.lifecycle.process import Served
from tests.policy.bundles import SigningKey
from tests.shadow import bundles


def test_the_flag_loads_the_shadow_and_sighup_reloads_it(
    active: Path, tmp_path: Path, key: SigningKey
) -> None:
    shadow = bundles.copy(active, tmp_path / "shadow")
    first = bundles.version(shadow)
    flags = ("--no-watch", "--reload-debounce", "0", "--shadow-policies", str(shadow))
    with Served(active, *flags) as served:
        assert served.banner.rstrip().endswith(f"shadow={first}")
        bundles.replace_policy(shadow, bundles.CANDIDATE)
        served.process.send_signal(signal.SIGHUP)
        second = bundles.version(shadow)
        served.wait_for(re.compile(rf"reloaded {shadow} \(SIGHUP\): version {second}"))
        assert served.stop() == 0


def test_an_invalid_shadow_from_the_environment_does_not_stop_the_server(
    active: Path, tmp_path: Path, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHZ_SHADOW_POLICIES", str(bundles.broken(tmp_path / "shadow", key)))
    with Served(active) as served:
        assert served.banner.rstrip().endswith("shadow=off")
        errors = "".join(served.seen)
        assert "running without shadow" in errors
        assert bundles.BROKEN_ERROR in errors
        assert served.stop() == 0


def test_help_says_an_invalid_shadow_never_stops_the_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--shadow-policies DIR" in help_text
    assert "runs without shadow: it never stops the server" in help_text


@pytest.mark.parametrize("inside", ["same", "below"])
def test_the_state_dir_must_not_be_inside_the_shadow_bundle(tmp_path: Path, inside: str) -> None:
    shadow = tmp_path / "shadow"
    state = shadow if inside == "same" else shadow / "state"
    with pytest.raises(ConfigError, match=r"^state-dir: must not be inside the shadow"):
        ServerConfig(policies=tmp_path / "policies", state_dir=state, shadow_policies=shadow)
