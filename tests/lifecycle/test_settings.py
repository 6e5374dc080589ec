"""The serve settings of the lifecycle: ServerConfig validation and the `authz serve` flags."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from authz.cli import main
from authz.config import ConfigError, ServerConfig


def test_defaults(tmp_path: Path) -> None:
    config = ServerConfig(policies=tmp_path)
    assert (config.state_dir, config.watch, config.reload_debounce_seconds) == (None, True, 0.2)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"reload_debounce_seconds": -0.1}, "reload-debounce: ", id="negative"),
        pytest.param({"reload_debounce_seconds": 61}, "reload-debounce: ", id="too-long"),
        pytest.param({"reload_debounce_seconds": math.nan}, "reload-debounce: ", id="nan"),
        pytest.param({"state_dir": "bundle"}, "state-dir: must not be inside", id="same"),
        pytest.param({"state_dir": "bundle/state"}, "state-dir: must not be inside", id="inside"),
        pytest.param({"state_dir": "."}, "state-dir: must not contain", id="contains"),
    ],
)
def test_invalid(tmp_path: Path, settings: dict[str, Any], message: str) -> None:
    if "state_dir" in settings:
        settings["state_dir"] = tmp_path / settings["state_dir"]
    with pytest.raises(ConfigError, match=message):
        ServerConfig(policies=tmp_path / "bundle", **settings)


def test_a_state_dir_beside_the_bundle(tmp_path: Path) -> None:
    config = ServerConfig(policies=tmp_path / "bundle", state_dir=tmp_path / "bundle-state")
    assert config.state_dir == tmp_path / "bundle-state"


def test_serve_refuses_a_state_dir_inside_the_bundle(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["serve", "--policies", str(bundle), "--state-dir", str(bundle / "state")])
    assert status == 2
    assert "state-dir: must not be inside the policies directory" in capsys.readouterr().err


def test_serve_reads_the_state_dir_from_the_environment(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHZ_STATE_DIR", str(bundle))
    assert main(["serve", "--policies", str(bundle)]) == 2
    assert "state-dir: must not be inside" in capsys.readouterr().err


def test_serve_refuses_a_bad_debounce(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--policies", str(bundle), "--reload-debounce", "-1"]) == 2
    assert "reload-debounce: must be between 0 and 60 seconds" in capsys.readouterr().err


def test_serve_refuses_an_unreadable_state_file(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text("{")
    argv = [
        "serve",
        "--policies",
        str(bundle),
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        str(state),
    ]
    assert main(argv) == 2
    assert f"authz serve: {state / 'state.json'}: unreadable" in capsys.readouterr().err


def test_serve_reports_a_missing_bundle_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    assert main(["serve", "--policies", str(missing), "--listen", "127.0.0.1:0"]) == 2
    assert f"{missing}:1:1: not a directory" in capsys.readouterr().err
